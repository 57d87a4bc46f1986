"""Throughput and latency of ``autopilot serve`` after ``autopilot demo``, loaded by wrk from another process.

    python bench/bench_http.py --state /tmp/autopilot-http-bench/state        # runs the demo first if needed
    python bench/bench_http.py --state DIR --duration 20 --connections 8

Targets (docs/BENCHMARKS.md, "HTTP service"): ``GET /metrics`` >= 500 requests/s with p99 < 50 ms; the
analyzer answering from the materialized tables >= 100 requests/s with p99 < 200 ms. The service runs as
users run it (``autopilot serve``, one uvicorn process, default cache of 2 s, access log off so the terminal
is not the bottleneck); wrk (Debian's ``wrk``) keeps ``--connections`` requests in flight and reports the
latency distribution. Client and server share the machine, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"
TASKS = ("detect_anomalies", "predict_failures", "analyze_trends", "generate_insights", "optimize_system")
TARGETS = {"metrics": (500, 50.0), "analyzer": (100, 200.0)}  # requests/s floor, p99 ceiling (ms)

_LUA = """
local bodies = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", nil, nil, bodies[(i %% #bodies) + 1])
end
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(*args: str, env: dict[str, str], **kwargs: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "autopilot_pipeline.cli", *args], cwd=ROOT, env=env, **kwargs
    )  # type: ignore[call-overload]


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(url: str, duration: int, connections: int, script: str | None = None) -> dict[str, float]:
    """One wrk run: requests/s, p50/p90/p99 (ms), non-2xx and socket errors."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-H",
        f"x-autopilot-sign: {SECRET}",
    ]
    if script:
        command += ["-s", script]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    latency = {
        p: _ms(v, u) for p, v, u in re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    }
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "p50": latency["50"],
        "p90": latency["90"],
        "p99": latency["99"],
        "non_2xx": float(non_2xx.group(1)) if non_2xx else 0.0,
        "socket_errors": float(sum(int(g) for g in errors.groups())) if errors else 0.0,
    }


def _lua(tasks: tuple[str, ...], folder: Path) -> str:
    path = folder / f"analyzer-{'-'.join(t[:4] for t in tasks)}.lua"
    bodies = ", ".join(json.dumps(json.dumps({"task": t})) for t in tasks)
    path.write_text(_LUA % bodies)
    return str(path)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--state", type=Path, required=True, help="AUTOPILOT_STATE_DIR (embedded Postgres)")
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run (default 20)")
    parser.add_argument("--connections", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument(
        "--cache-seconds",
        default="2",
        help="the service's --cache-seconds (default 2; 0: every request reads)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench_http: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    env = {**os.environ, "AUTOPILOT_STATE_DIR": str(args.state.resolve()), "AUTOPILOT_SECRET": SECRET}
    env.pop("AUTOPILOT_DATABASE_URL", None)
    env.pop("OPENAI_API_KEY", None)
    env.setdefault("PYTHONPATH", str(ROOT))
    if not (args.state / "postgres" / "pgdata").exists():
        print("running `autopilot demo` first (7 days, 6 components)…", flush=True)
        if _cli("demo", env=env).wait() != 0:
            return 1
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _cli(
        "serve",
        "--port",
        str(port),
        "--no-access-log",
        "--cache-seconds",
        args.cache_seconds,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    results: dict[str, dict[str, float]] = {}
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                print("bench_http: the service did not become ready", file=sys.stderr)
                return 1
            time.sleep(0.5)
        with tempfile.TemporaryDirectory() as folder:
            runs = {
                "metrics": (f"{url}/metrics", None),
                "metrics-exporter": (f"{url}/functions/v1/metrics-exporter", None),
                "analyzer": (f"{url}/functions/v1/ai-ops-analyzer", _lua(TASKS, Path(folder))),
                **{
                    f"analyzer {task}": (f"{url}/functions/v1/ai-ops-analyzer", _lua((task,), Path(folder)))
                    for task in TASKS
                },
            }
            for name, (target, script) in runs.items():
                duration = args.duration if name in ("metrics", "analyzer") else max(5, args.duration // 4)
                wrk(target, 2, args.connections, script)  # warm-up: connections, caches, JIT-free but imports
                results[name] = r = wrk(target, duration, args.connections, script)
                print(
                    f"{name:<30} {r['rps']:>8.0f} req/s  p50 {r['p50']:6.1f} ms  p90 {r['p90']:6.1f} ms  "
                    f"p99 {r['p99']:6.1f} ms  ({r['requests']:.0f} requests, non-2xx {r['non_2xx']:.0f}, "
                    f"socket errors {r['socket_errors']:.0f})",
                    flush=True,
                )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    print(
        f"\nmachine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}; "
        f"wrk -t1 -c{args.connections}, {args.duration} s per headline run, --cache-seconds {args.cache_seconds}"
    )
    ok = True
    for name, (floor, ceiling) in TARGETS.items():
        r = results[name]
        passed = r["rps"] >= floor and r["p99"] < ceiling and r["non_2xx"] == 0
        ok &= passed
        print(f"{name}: {'PASS' if passed else 'FAIL'} (target >= {floor} req/s, p99 < {ceiling:.0f} ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
