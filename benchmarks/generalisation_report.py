"""Summary and Markdown of `benchmarks.generalisation`'s results (targets from issue 11)."""
from __future__ import annotations

import numpy as np

TARGETS = {"r": 0.6, "lag": 2, "pbm": 0.8, "silent": 0.9, "cold": 0.6, "followed": 0.9}


def _group(row: dict) -> str:
    return "render --text (espeak-ng)" if row["source"] == "espeak-ng" else f"real speech, {row['condition']}"


def summary(result: dict) -> dict:
    out: dict = {}
    if "lipsync" in result:
        groups: dict[str, list[dict]] = {}
        colds = {}
        for row in result["lipsync"]:
            if row["condition"] == "cold_start":
                colds.setdefault("render --text (espeak-ng)" if row["source"] == "espeak-ng" else "real speech, clean",
                                 []).append(row["cold_start"])
            else:
                groups.setdefault(_group(row), []).append(row)
        lip = {}
        for name, rows in groups.items():
            cold = colds.get(name, [])
            lip[name] = {
                "clips": len(rows), "r": float(np.mean([r["r"] for r in rows])),
                "max_abs_lag": int(max(abs(r["lag"]) for r in rows)),
                "pbm_closed": sum(r["bilabials_closed"] for r in rows) / max(sum(r["bilabials"] for r in rows), 1),
                "pbm": sum(r["bilabials"] for r in rows),
                "silent_closed": sum(r["silent_closed"] for r in rows) / max(sum(r["silent_frames"] for r in rows), 1),
                "silent_frames": sum(r["silent_frames"] for r in rows),
                "cold_start": float(np.mean(cold)) if cold else None,
                "cold_start_min": float(np.min(cold)) if cold else None,
            }
        out["lipsync"] = lip
    if "instructions" in result:
        classes: dict[str, dict] = {}
        for row in result["instructions"]["rows"]:
            kind = "text" if row["source"] == "text" else "audio"
            entry = classes.setdefault(row["class"], {"group": row["group"], "text": [], "audio": [], "teacher": []})
            entry[kind].append(bool(row["followed"]))
            if row["teacher_values"] is not None and not entry["teacher"]:
                entry["teacher"] = row["teacher_values"]
                entry["teacher_ok"] = row.get("teacher_followed")
        for entry in classes.values():
            entry["values_text"] = None
        for row in result["instructions"]["rows"]:  # mean signed change per class, text source, first rule
            if row["source"] == "text":
                classes[row["class"]].setdefault("_v", []).append(row["values"][0] if row["group"] != "intensity"
                                                                  else row["values"][1])
        out["instructions"] = {
            name: {"group": e["group"], "text": float(np.mean(e["text"])) if e["text"] else None,
                   "audio": float(np.mean(e["audio"])) if e["audio"] else None, "n": len(e["text"]) + len(e["audio"]),
                   "mean_change_text": float(np.mean(e["_v"])) if e.get("_v") else None,
                   "teacher_change": e["teacher"][0] if e["teacher"] else None,
                   "teacher_followed": e.get("teacher_ok")}
            for name, e in classes.items()}
        rows = result["instructions"]["rows"]
        out["instructions_total"] = {
            kind: float(np.mean([r["followed"] for r in rows if (r["source"] == "text") == (kind == "text")]))
            for kind in ("text", "audio")}
    return out


def _f(v, fmt: str = ".2f") -> str:
    return "—" if v is None else format(v, fmt)


def markdown(result: dict) -> str:
    s = result["summary"]
    lines = [f"Command: `{result['command']}` (checkpoint: {result['checkpoint']}, seed {result['seed']}, "
             f"{result.get('seconds', '?')} s)", ""]
    if "lipsync" in s:
        lines += ["| speech (clips) | r at best lag (≥ 0.6) | max abs lag, frames (≤ 2) | /p b m/ closed (≥ 0.8) | "
                  "silent frames closed (≥ 0.9) | first 0.8 s / same again (≥ 0.6), mean · min |",
                  "|---|---|---|---|---|---|"]
        for name, g in s["lipsync"].items():
            lines.append(f"| {name} ({g['clips']}) | {g['r']:.2f} | {g['max_abs_lag']} | {g['pbm_closed']:.2f} "
                         f"({g['pbm']}) | {g['silent_closed']:.2f} ({g['silent_frames']}) | "
                         f"{_f(g['cold_start'])} · {_f(g['cold_start_min'])} |")
        lines.append("")
    if "instructions" in s:
        tot = s["instructions_total"]
        lines += [f"Instructions followed overall: render --text {tot['text']:.2f}, render --audio {tot['audio']:.2f}",
                  "", "| class | group | followed, --text | followed, --audio | mean change (--text) | "
                  "teacher's change | rule |", "|---|---|---|---|---|---|---|"]
        # a rule the teacher itself does not pass measures the renderer's pixels, not the generator
        rules = {r["class"]: r["rules"] for r in result["instructions"]["rows"]}
        for name, c in s["instructions"].items():
            rule = "; ".join(f"{m} {'+' if sign > 0 else '-'}{t}" for m, sign, t in rules[name])
            lines.append(f"| {name} | {c['group']} | {_f(c['text'])} | {_f(c['audio'])} | "
                         f"{_f(c['mean_change_text'], '+.3f')} | {_f(c['teacher_change'], '+.3f')}"
                         f"{' (teacher fails: not measurable)' if c['teacher_followed'] is False else ''} | {rule} |")
        lines.append("")
    return "\n".join(lines) + "\n"
