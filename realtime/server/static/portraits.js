// The face picker: the server's portraits (GET /api/portraits), a preview before Start, uploads (POST).
"use strict";

async function loadPortraits(selected) {
  let portraits = [];
  try {
    portraits = (await (await fetch("/api/portraits")).json()).portraits;
  } catch (err) {
    showError(`cannot list the portraits: ${err}`);
  }
  const select = $("portrait");
  select.replaceChildren(...portraits.map((p) => new Option(p.source === "upload" ? `uploaded ${p.name.slice(7, 13)}` : p.name, p.name)));
  if (selected && portraits.some((p) => p.name === selected)) select.value = selected;
  showPortrait();
}

function showPortrait() {
  const preview = $("portrait-preview");
  const name = $("portrait").value;
  preview.hidden = !name || call.pc !== null;  // shown before Start, the call's video after
  if (name) preview.src = `/portraits/${encodeURIComponent(name)}`;
}

async function uploadPortrait(file) {
  const response = await fetch("/api/portraits", { method: "POST", body: file,
    headers: { "Content-Type": file.type || "application/octet-stream" } });
  if (!response.ok) {
    showError(`portrait refused: ${(await response.text()).trim()}`);
    return;
  }
  await loadPortraits((await response.json()).portrait);
}

$("portrait").addEventListener("change", showPortrait);
$("portrait-upload").addEventListener("change", (event) => {
  const [file] = event.target.files;
  if (file) uploadPortrait(file);
  event.target.value = "";
});
$("video").addEventListener("playing", () => { $("portrait-preview").hidden = true; });
$("video").addEventListener("emptied", showPortrait);
loadPortraits(params.get("portrait"));
