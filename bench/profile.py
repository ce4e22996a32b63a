"""Where one request's CPU goes: py-spy on a loaded `ccgate serve`, summed by function.

For each side (`LABEL=VARIANT[@SRC]`, as `bench.ab` takes them: a `bench cost` variant and an
optional `src/` to run) this starts the gateway against the bench's nginx, puts the wrk load
through it while `py-spy record --format raw --nonblocking` samples it, and prints the
functions with the most samples, as µs per request (a sample stands for 1/rate s of one
thread running; divided by the requests wrk completed):

* self: the function was the innermost frame (its own Python, or C it calls directly);
* incl: the function was anywhere on the stack (it and everything it called);
* by module: self time summed per source file.

The process's CPU per request from /proc is printed beside them for scale. py-spy counts a
thread only while it is not waiting (its idle heuristic), so the sums come close to that
figure but need not match it. Needs `py-spy` (pip install py-spy) next to the interpreter or
on PATH.

    .venv/bin/python -m bench.profile --seconds 10 full=full issued=issued
    .venv/bin/python -m bench.profile --request large --seconds 10 tr=translated
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from bench import wrk
from bench.ab import _side
from bench.gateway import UPSTREAM_KEY
from bench.nginx import Nginx
from bench.options import Options
from bench.procs import cpu_ticks, ticks_to_seconds
from bench.workload import ANTHROPIC_HEADERS, SMALL_BODY, large_request

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy not found: pip install py-spy")
    return found


def short(path: str) -> str:
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def thread_ticks(pid: int) -> dict[int, int]:
    """utime + stime of each thread of `pid` so far, in clock ticks, by thread id."""
    ticks: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[int(task.name)] = int(fields[11]) + int(fields[12])
    return ticks


def thread_split(pid: int, before: dict[int, int], after: dict[int, int], requests: int) -> str:
    """CPU per request of the event-loop thread (the process's first) and of the others."""
    spent = {tid: ticks_to_seconds(t - before.get(tid, 0)) * 1e6 / max(requests, 1) for tid, t in after.items()}
    main = spent.pop(pid, 0.0)
    others = ", ".join(f"{us:.0f}" for us in sorted(spent.values(), reverse=True) if us >= 0.5)
    return f"event loop {main:.0f} µs/request, other threads {others or '0'}"


def summarise(raw: str) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    """(self samples by function, inclusive samples by function, self by file, total samples)."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    files: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        names = []
        for frame in stack.split(";"):
            m = _FRAME.match(frame)
            names.append((f"{m['func']} ({short(m['file'])})", short(m["file"])) if m else (frame, frame))
        own[names[-1][0]] += n
        files[names[-1][1]] += n
        for name in {name for name, _ in names}:
            incl[name] += n
    return own, incl, files, total


def report(label: str, raw: str, rate: int, requests: int, cpu_s: float, top: int, threads: str) -> str:
    own, incl, files, total = summarise(raw)
    per = 1e6 / rate / max(requests, 1)  # µs per request that one sample stands for
    out = [f"== {label}: {requests} requests, CPU {cpu_s * 1e6 / max(requests, 1):.0f} µs/request (/proc), "
           f"py-spy {total * per:.0f} µs/request ({total} samples at {rate}/s)", f"   {threads}"]
    for title, counts in (("self", own), ("incl", incl), ("self by file", files)):
        out.append(f"-- {title}")
        out += [f"{n * per:8.1f} µs  {name}" for name, n in counts.most_common(top)]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--request", choices=["small", "large"], default="small")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--top", type=int, default=45)
    ap.add_argument("--out", type=Path, help="keep the raw py-spy files in this folder")
    ap.add_argument("--no-spy", action="store_true", help="CPU per thread only, without py-spy")
    ap.add_argument("sides", nargs="+", metavar="LABEL=VARIANT[@SRC]")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ccgate-bench-profile-"))
    keep = args.out or work
    keep.mkdir(parents=True, exist_ok=True)
    body, headers = SMALL_BODY, dict(ANTHROPIC_HEADERS)
    if args.request == "large":
        large = large_request(Options(log=print), work)
        body, headers = large.body, dict(large.headers)
    with ExitStack() as stack:
        nginx = Nginx(work, UPSTREAM_KEY).start()
        stack.callback(nginx.stop)
        for spec in args.sides:
            side = _side(spec, work, nginx, body, headers, args.request, stack)
            wrk.run(side.url, side.request, args.concurrency, 2, 1)  # warm
            raw_file = keep / f"{side.name}.raw"
            proc = None if args.no_spy else subprocess.Popen(
                [py_spy(), "record", "--pid", str(side.pid), "--format", "raw", "--rate", str(args.rate),
                 "--nonblocking", "--output", str(raw_file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            before, threads = cpu_ticks(side.pid), thread_ticks(side.pid)
            result = wrk.run(side.url, side.request, args.concurrency, args.seconds, 1)
            requests = int(result["requests"])
            cpu = ticks_to_seconds(cpu_ticks(side.pid) - before)
            split = thread_split(side.pid, threads, thread_ticks(side.pid), requests)
            if proc is None:
                print(f"== {side.name}: {requests} requests, CPU {cpu * 1e6 / max(requests, 1):.0f} µs/request; "
                      f"{split}", flush=True)
                continue
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            proc.wait(timeout=60)
            print(report(side.name, raw_file.read_text(), args.rate, requests, cpu, args.top, split), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
