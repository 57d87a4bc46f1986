"""``autopilot dev``: the Dagster UI (webserver + daemon) on 127.0.0.1 against the same Postgres.

Dagster copies the SIGINT handler onto SIGTERM and starts ignoring both when launched from a
non-interactive script (FACTS trap 3). We start it in its own session with default signal handling and
stop it by sending SIGINT to its top process only; it then stops its children itself. Whatever is still
running after DAGSTER_GRACE_S gets SIGKILL (its whole session's process group), then Prometheus and the
embedded Postgres stop, so SIGTERM or Ctrl-C ends everything within 10 s (tests/faults/test_signals.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request

import dagster as dg

from autopilot_pipeline import runner, settings, shutdown
from autopilot_pipeline.commands._ports import check_port_free, port_or_free
from autopilot_pipeline.commands._workers import LocalCluster, start_cluster
from autopilot_pipeline.defs import executors
from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.integrations.prometheus_local import LocalPrometheus, missing_binaries
from autopilot_pipeline.postgres import migrate, server, urls

DAGSTER_GRACE_S = 3.0  # then SIGKILL: Postgres still needs its seconds of the 10 s budget
PROXY_ENV = "AUTOPILOT_UI_PROXY"  # the authenticating proxy in front of the UI (README "Exposing the UI")


def register(subparsers: argparse._SubParsersAction) -> None:
    dev = subparsers.add_parser("dev", help="start the Dagster UI and daemon (schedules and sensors run)")
    dev.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; the UI has no login: see README before changing it)",
    )
    dev.add_argument("--port", type=int, default=3000, help="UI port (default 3000)")
    dev.add_argument(
        "--with-prometheus",
        action="store_true",
        help="also start a Pushgateway and Prometheus on 127.0.0.1 (Debian's prometheus and "
        "prometheus-pushgateway must be installed) and push the metrics there",
    )
    dev.add_argument(
        "--api-port",
        type=int,
        default=8000,
        help="port of the HTTP API (`autopilot serve`) started beside the UI (default 8000, else a free one)",
    )
    dev.add_argument("--no-api", action="store_true", help="do not start the HTTP API")
    dev.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="run steps on N Celery workers (`autopilot worker`) over a Redis started on 127.0.0.1 "
        "(Debian's redis-server; docs/SCALING.md); default 0: steps run in the run's own process",
    )
    dev.set_defaults(handler=run)


def exposure_warning(host: str, proxy: str | None) -> str | None:
    """A warning when the unauthenticated UI would be reachable from other machines without a proxy."""
    import ipaddress

    if proxy or host in ("localhost", ""):
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name other than localhost: may resolve to anything
    return (
        f"autopilot: warning: the Dagster UI has no authentication and will listen on {host}, reachable "
        "from other machines: anyone who reaches it can launch runs. Put it behind an authenticating proxy "
        f"(README, 'Exposing the UI') and set {PROXY_ENV} to the proxy's URL, or keep --host 127.0.0.1."
    )


def _reset_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 120) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                return True
        except OSError:
            time.sleep(0.5)
    return False


def _stop(process: subprocess.Popen | None, stack: LocalPrometheus | None) -> None:
    """SIGINT to Dagster's top process and SIGTERM to Prometheus at once; SIGKILL Dagster's process group
    if it is not done within DAGSTER_GRACE_S (its webserver, daemon, code servers and run workers)."""
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGINT)
    if stack is not None:
        for child in stack.processes.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
    if process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(DAGSTER_GRACE_S)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # children that outlived their parent, too
        process.wait()
    if stack is not None:
        stack.stop(timeout_s=2.0)


def _start_api(args: argparse.Namespace, env: dict[str, str]) -> subprocess.Popen:
    """``autopilot serve`` beside the UI, on the UI's address (loopback when no AUTOPILOT_SECRET is set)."""
    from autopilot_pipeline.service import auth

    host = args.host
    if not os.environ.get(auth.SECRET_ENV, "").strip() and not auth.is_loopback(host):
        host = "127.0.0.1"
        print(f"HTTP API on 127.0.0.1 only: set {auth.SECRET_ENV} to serve it on {args.host}")
    port = port_or_free(args.api_port) if auth.is_loopback(host) else args.api_port
    command = [sys.executable, "-m", "autopilot_pipeline.cli", "serve", "--host", host, "--port", str(port)]
    process = subprocess.Popen(command, cwd=settings.PROJECT_ROOT, env=env, preexec_fn=_reset_signals)
    print(f"HTTP API: http://{host}:{port}/functions/v1/ai-ops-analyzer and /functions/v1/metrics-exporter")
    return process


def _stop_api(process: subprocess.Popen | None) -> None:
    """SIGTERM (uvicorn finishes open requests and exits); SIGKILL after DAGSTER_GRACE_S."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(DAGSTER_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start_prometheus() -> LocalPrometheus:
    """Pushgateway + Prometheus on free loopback ports, storage under the state directory."""
    missing = missing_binaries()
    if missing:
        raise AutopilotError(
            f"--with-prometheus needs {', '.join(missing)}: apt-get install prometheus prometheus-pushgateway"
        )
    ports = {"pushgateway_port": port_or_free(9091), "prometheus_port": port_or_free(9090)}
    try:
        stack = LocalPrometheus(settings.state_dir() / "prometheus", scrape_interval="15s", **ports).start()
    except RuntimeError as exc:
        raise AutopilotError(str(exc)) from exc
    os.environ["PUSHGATEWAY_URL"] = stack.pushgateway_url  # for the first push below and for Dagster
    with dg.DagsterInstance.get() as instance:
        pushed = runner.run_job(instance, "metrics_push_job")
    print(
        f"Prometheus: {stack.prometheus_url}/graph?g0.expr=autopilot_uptime_percentage  "
        f"(Pushgateway {stack.pushgateway_url}; first push {'done' if pushed.success else 'failed'}, "
        "then after every health run)"
    )
    return stack


def run(args: argparse.Namespace) -> int:
    warning = exposure_warning(args.host, os.environ.get(PROXY_ENV, "").strip() or None)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    if args.workers < 0:
        raise AutopilotError(f"--workers must be 0 or more, not {args.workers}")
    try:  # the code location would fail to load in the UI, long after this one line
        if executors.executor_name() == "celery" and not args.workers:
            executors.redis_url()
    except ValueError as exc:
        raise AutopilotError(str(exc)) from None
    check_port_free(args.host, args.port)
    # Ctrl-C and SIGTERM both stop cleanly, even when our parent started us with SIGINT ignored.
    shutdown.install()
    db: server.Database | None = None
    stack: LocalPrometheus | None = None
    process: subprocess.Popen | None = None
    api: subprocess.Popen | None = None
    cluster: LocalCluster | None = None
    interrupted = False
    try:
        with shutdown.deferred():  # a signal while Postgres starts: stop it once we hold its handle
            db = server.resolve()
        migrate.migrate(db.url)
        env = {**os.environ, **runner.configure_environment(db), "PYTHONWARNINGS": "ignore"}
        with dg.DagsterInstance.get() as instance:
            runner.ensure_targets(instance)  # 'default' and every added target, before the first tick
        with shutdown.deferred():
            stack = _start_prometheus() if args.with_prometheus else None
        if stack is not None:
            env["PUSHGATEWAY_URL"] = stack.pushgateway_url
        if args.workers:
            with shutdown.deferred():  # before Dagster starts: it loads the Celery executor from env
                cluster = start_cluster(args.workers, env)
            print(f"{args.workers} Celery worker(s) on Redis {cluster.redis.url}", flush=True)
        command = [
            sys.executable,
            "-m",
            "dagster",
            "dev",
            "-w",
            str(settings.PROJECT_ROOT / "workspace.yaml"),
            "-h",
            args.host,
            "-p",
            str(args.port),
        ]
        with shutdown.deferred():
            process = subprocess.Popen(
                command, cwd=settings.PROJECT_ROOT, env=env, start_new_session=True, preexec_fn=_reset_signals
            )
            api = None if args.no_api else _start_api(args, env)
        url = f"http://{args.host}:{args.port}"
        if _wait_ready(url, process):
            print(
                f"Dagster UI: {url}  (database {urls.display(db.url)}) — Ctrl-C stops everything", flush=True
            )
        code = process.wait()
        if code != 0:
            raise AutopilotError(f"dagster dev exited with code {code}")
    except KeyboardInterrupt:
        print("stopping Dagster…", file=sys.stderr, flush=True)
        interrupted = True
    finally:
        with shutdown.cleaning_up():
            started = time.monotonic()
            if api is not None and api.poll() is None:
                api.terminate()  # at once, beside Dagster's SIGINT: the stops run in parallel
            if cluster is not None:
                for worker in cluster.workers.processes:  # warm shutdown starts beside Dagster's
                    if worker.poll() is None:
                        worker.send_signal(signal.SIGTERM)
            _stop(process, stack)
            _stop_api(api)
            if cluster is not None:
                cluster.stop(grace_s=1.0)
            if db is not None:
                server.release(db)
            if process is not None:
                print(f"stopped in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    if interrupted:
        shutdown.exit_now(0)
    return 0
