"""Per-thread CPU and CPU-weighted Python stacks of a server process, for `benchmarks.thread_profile`.

py-spy cannot read other processes on these machines, so the server profiles itself: with this folder on
PYTHONPATH and AVATAR_THREADPROF=DIR set, a daemon thread samples every thread's Python stack every 10 ms and
charges it the thread's CPU time used since the previous sample (so waiting threads cost nothing). `DIR/start`
resets the counters; `DIR/stop` writes DIR/profile.json. Every other process ignores this file.
"""
import os
import sys

if os.environ.get("AVATAR_THREADPROF") and "serve" in sys.argv[1:3]:
    import json
    import threading
    import time
    from collections import Counter
    from pathlib import Path

    _DIR = Path(os.environ["AVATAR_THREADPROF"])
    _TICKS = os.sysconf("SC_CLK_TCK")

    def _proc_threads() -> dict:
        """tid -> (comm, CPU seconds) for every OS thread of this process (Python or not)."""
        out = {}
        for task in Path("/proc/self/task").iterdir():
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            out[int(task.name)] = (comm, (int(fields[11]) + int(fields[12])) / _TICKS)
        return out

    def _stack(frame) -> str:
        names = []
        while frame is not None and len(names) < 40:
            code = frame.f_code
            names.append(f"{code.co_name} ({Path(code.co_filename).name}:{frame.f_lineno})")
            frame = frame.f_back
        return ";".join(reversed(names))

    def _sampler() -> None:
        stacks: Counter = Counter()
        last: dict = {}
        start = None
        me = threading.get_ident()
        while True:
            time.sleep(0.01)
            if start is None:
                if (_DIR / "start").exists():
                    stacks.clear()
                    start = (time.monotonic(), _proc_threads())
                    last = {}
                else:
                    continue
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                try:
                    cpu = time.clock_gettime(time.pthread_getcpuclockid(ident))
                except OSError:
                    continue
                used = cpu - last.get(ident, cpu)
                last[ident] = cpu
                if used > 0:
                    stacks[f"{names.get(ident, ident)};{_stack(frame)}"] += used
            if (_DIR / "stop").exists():
                wall = time.monotonic() - start[0]
                end = _proc_threads()
                py = {t.native_id: t.name for t in threading.enumerate()}
                before = start[1]
                threads = [{"tid": tid, "name": py.get(tid, comm), "cpu_s": round(cpu - before.get(tid, (0, 0))[1], 3)}
                           for tid, (comm, cpu) in end.items()]
                report = {"wall_s": wall, "threads": sorted(threads, key=lambda t: -t["cpu_s"]),
                          "stacks": {k: round(v, 4) for k, v in stacks.most_common()}}
                (_DIR / "profile.json").write_text(json.dumps(report))
                return

    threading.Thread(target=_sampler, name="threadprof", daemon=True).start()
