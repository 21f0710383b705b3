// The avatar page: WebRTC call with the server, instructions, live figures. Plain JS, no build step.
// Query options: ?autostart=1 starts the call on load; &instruction=TEXT&intensity=0.8 set the first instruction.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const call = { ws: null, pc: null, channel: null, session: null, mic: null, timers: [], pings: new Map(),
               frames: 0, fps: 0, rtt: null, state: "idle" };

function wsUrl() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
}

function setState(state) {
  call.state = state;
  $("state").textContent = state;
  updateTitle();
}

// The title carries the page state so that headless tests can poll it through the debugging endpoint.
function updateTitle() {
  document.title = `avatar ${call.state} frames=${call.frames} fps=${call.fps.toFixed(1)} session=${call.session || "-"}`;
}

function showError(message) {
  const el = $("error");
  el.textContent = message;
  el.hidden = !message;
}

function send(message) {
  // The data channel when open (lower latency, same path as the media), else the WebSocket.
  const text = JSON.stringify(message);
  if (call.channel && call.channel.readyState === "open") call.channel.send(text);
  else if (call.ws && call.ws.readyState === WebSocket.OPEN) call.ws.send(text);
}

function onMessage(raw) {
  let message;
  try { message = JSON.parse(raw); } catch { return; }
  switch (message.type) {
    case "answer":
      call.session = message.session;
      $("session").textContent = message.session;
      const viewer = $("viewer");
      viewer.href = `/view?session=${encodeURIComponent(message.session)}&key=${encodeURIComponent(message.viewKey || "")}`;
      viewer.hidden = false;
      call.pc.setRemoteDescription({ type: message.sdpType, sdp: message.sdp }).catch((e) => showError(String(e)));
      updateTitle();
      break;
    case "instructed":
      $("ack").textContent = message.text ? `"${message.text}" (${message.intensity}) from frame ${message.frame}`
                                          : `none, from frame ${message.frame}`;
      break;
    case "pong": {
      const sent = call.pings.get(message.t);
      if (sent !== undefined) {
        call.pings.delete(message.t);
        call.rtt = performance.now() - sent;
        $("rtt").textContent = `${call.rtt.toFixed(1)} ms`;
      }
      break;
    }
    case "stats": {
      const latency = message.stages && message.stages.latency;
      if (latency) $("latency").textContent = `${latency.p50_ms.toFixed(0)} ms (p95 ${latency.p95_ms.toFixed(0)})`;
      break;
    }
    case "error":
      showError(message.message);
      if (call.state === "connecting") stop();
      break;
  }
}

async function start() {
  showError("");
  $("start").disabled = true;
  $("stop").disabled = false;
  setState("connecting");
  try {
    const pc = new RTCPeerConnection();
    call.pc = pc;
    if ($("mic").checked) {
      try {
        call.mic = await navigator.mediaDevices.getUserMedia({
          audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
        call.mic.getAudioTracks().forEach((track) => pc.addTrack(track, call.mic));
      } catch (e) {
        showError(`no microphone (${e.name}): the avatar will idle`);
        pc.addTransceiver("audio", { direction: "recvonly" });
      }
    } else {
      pc.addTransceiver("audio", { direction: "recvonly" });
    }
    pc.addTransceiver("video", { direction: "recvonly" });
    call.channel = pc.createDataChannel("control");
    call.channel.onmessage = (event) => onMessage(event.data);
    const stream = new MediaStream();
    pc.ontrack = (event) => {
      stream.addTrack(event.track);
      $("video").srcObject = stream;
      $("placeholder").hidden = true;
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "connected") setState("live");
      if (pc.connectionState === "failed" || pc.connectionState === "closed") stop();
    };
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringDone(pc);

    call.ws = new WebSocket(wsUrl());
    call.ws.onmessage = (event) => onMessage(event.data);
    call.ws.onclose = () => { if (call.state !== "idle") stop(); };
    call.ws.onopen = () => {
      const offer = { type: "offer", sdp: pc.localDescription.sdp, sdpType: "offer" };
      const text = $("instruction").value.trim();
      if (text) { offer.instruction = text; offer.intensity = Number($("intensity").value); }
      const portrait = $("portrait").value;
      if (portrait && portrait !== "default") offer.portrait = portrait;
      call.ws.send(JSON.stringify(offer));
    };
    call.timers.push(setInterval(ping, 1000), setInterval(pollStats, 1000),
                     setInterval(() => send({ type: "stats" }), 2000));
  } catch (e) {
    showError(String(e));
    stop();
  }
}

function iceGatheringDone(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", check); resolve(); } };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, 2000);  // host candidates are enough on a LAN
  });
}

function ping() {
  const t = performance.now();
  call.pings.set(t, t);
  send({ type: "ping", t });
}

let lastDecoded = null;
async function pollStats() {
  if (!call.pc) return;
  const report = await call.pc.getStats();
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      call.frames = s.framesDecoded || 0;
      if (lastDecoded) {
        const dt = (s.timestamp - lastDecoded.timestamp) / 1000;
        if (dt > 0) call.fps = (call.frames - lastDecoded.frames) / dt;
      }
      lastDecoded = { frames: call.frames, timestamp: s.timestamp };
    }
  });
  $("fps").textContent = `${call.fps.toFixed(1)} fps`;
  $("frames").textContent = String(call.frames);
  updateTitle();
}

function stop() {
  call.timers.forEach(clearInterval);
  call.timers = [];
  if (call.ws && call.ws.readyState === WebSocket.OPEN) call.ws.send(JSON.stringify({ type: "bye" }));
  if (call.channel) call.channel.close();
  if (call.pc) call.pc.close();
  if (call.ws) call.ws.close();
  if (call.mic) call.mic.getTracks().forEach((t) => t.stop());
  Object.assign(call, { ws: null, pc: null, channel: null, mic: null, session: null, fps: 0 });
  lastDecoded = null;
  $("start").disabled = false;
  $("stop").disabled = true;
  $("placeholder").hidden = false;
  $("video").srcObject = null;
  $("session").textContent = "–";
  $("viewer").hidden = true;
  setState("idle");
}

function instruct(text) {
  $("instruction").value = text;
  const intensity = Number($("intensity").value);
  if (call.session) send({ type: "instruct", text, intensity });
}

$("start").onclick = start;
$("stop").onclick = stop;
$("instruct-form").onsubmit = (event) => { event.preventDefault(); instruct($("instruction").value.trim()); };
$("clear").onclick = () => instruct("");
$("intensity").oninput = () => { $("intensity-value").textContent = Number($("intensity").value).toFixed(2); };
$("intensity").onchange = () => { if (call.session && $("instruction").value.trim()) instruct($("instruction").value.trim()); };
document.querySelectorAll(".presets button").forEach((button) => {
  button.onclick = () => instruct(button.dataset.text);
});

if (params.get("instruction")) $("instruction").value = params.get("instruction");
if (params.get("intensity")) { $("intensity").value = params.get("intensity"); $("intensity").oninput(); }
if (params.get("mic") === "0") $("mic").checked = false;
updateTitle();
if (params.get("autostart") === "1") start();
