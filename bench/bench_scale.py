"""Scale-out benchmark (issue 12): one backfill on the in-process executor vs 1 vs 2 Celery workers.

    PYTHONPATH=. .venv/bin/python bench/bench_scale.py                 # 8 targets x 24 hours (~2 min idle)
    PYTHONPATH=. .venv/bin/python bench/bench_scale.py --targets 2 --hours 4   # quick check

Each monitored target is its own demo database (``--components``, default 6, and ``--app-scale`` of the
demo's app traffic, default all of it: the size `autopilot demo` loads; a different seed each) on
one throw-away embedded PostgreSQL 18 (fsync off); the first is the pipeline's own database (target
``default``), the others are registered as targets ``t1``, ``t2`` … (``autopilot targets add --url-env``),
so the backfill runs over real (target, hour) partitions and all results land in the pipeline database.

One run, same data, same Dagster instance (Postgres-backed, as the workers need):

1. the backfill (``health_hourly_job``, one run per target over its ``--hours`` hourly partitions: the
   assets' single-run backfill policy) on the in-process executor, ``--parallel-runs`` runs at once (by
   default as many as the run queue of ``dagster.yaml`` lets background runs go at once: 2);
2. the same backfill on the Celery executor (Redis on 127.0.0.1) with 1 worker, then with 2 workers
   (concurrency 1 each), the runs only orchestrating;
3. the cost of one partition as targets grow: the 2-worker backfill of 1, 2, 4 … targets, wall time per
   (target, hour) partition, and one hour of one target alone (in process, median of 3) before and after.

Each executor backfills the day before first, then the day measured ``--repeat`` times (default 3), on the
same workers: the first backfill after a worker starts also pays its start (a pool process copies the pages
it inherited as it first writes them, and opens its connections: ~1 to 2 CPU s per worker, seen with
``perf`` as kernel time in page copies), which a long-lived worker pays once. Both are reported; an
executor's figure is the median of its repeats (one backfill's wall time varies by a few tenths of a
second here, enough to move the ratio of two by ±0.1).

Every database is vacuumed before each backfill (``settle``: the freshly loaded targets kept autovacuum
busy during random backfills). Every backfill must succeed and leave the same row counts. Wall times
include process starts (the run processes and, for Celery, each worker's first load of the code location). The load average is reported
beside each figure: other work on this machine slows every row alike only if it stays the same.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import proc_cpu
import psycopg
from psycopg import sql

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import yaml  # noqa: E402

from autopilot_pipeline import backfill, runner, settings  # noqa: E402
from autopilot_pipeline.commands._workers import LocalWorkers  # noqa: E402
from autopilot_pipeline.defs import executors, run_policy  # noqa: E402
from autopilot_pipeline.demo.store import load_demo_data  # noqa: E402
from autopilot_pipeline.integrations.redis_local import LocalRedis  # noqa: E402
from autopilot_pipeline.postgres import migrate, server, urls  # noqa: E402
from autopilot_pipeline.postgres import targets as targets_store  # noqa: E402

END = datetime(2026, 3, 3, tzinfo=UTC)
#: The label of each executor's first backfill (fresh workers; for the in-process executor, the harness's
#: fork server starting too): the day before the measured one.
FIRST = "first after start"
TABLES = (
    "analytics.uptime_hourly",
    "analytics.error_rates_hourly",
    "analytics.response_times_hourly",
    "analytics.health_score_hourly",
    "analytics.metric_samples_hourly",
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def hours(count: int) -> list[str]:
    return [runner.hour_key(END - timedelta(hours=count - i)) for i in range(count)]


def background_runs_at_once() -> int:
    """How many background runs (health backfills among them) the daemon's run queue lets go at once: the
    limit of the background lane in ``dagster.yaml`` (``defs/run_policy.py``), so the benchmark runs a
    backfill as the daemon would."""
    config = yaml.safe_load((settings.PROJECT_ROOT / "dagster.yaml").read_text())["run_coordinator"]["config"]
    (limit,) = (
        lane["limit"]
        for lane in config["tag_concurrency_limits"]
        if (lane["key"], lane["value"]) == (run_policy.LANE_TAG, "background")
    )
    return int(limit)


def create_target(server_url: str, index: int, components: int, app_scale: float) -> str:
    """A monitored target: its own migrated database with one day of demo data."""
    name = f"bench_target_{index}"
    with psycopg.connect(urls.with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urls.with_database(server_url, name)
    migrate.migrate(url)
    load_demo_data(
        url, days=2, components=components, seed=11 + index, replace=False, end=END, app_scale=app_scale
    )
    return url


def register_targets(urls_: list[str]) -> list[str]:
    """The first database is the pipeline's (``default``); the others become targets ``t1`` … of it, their
    URLs in environment variables as ``autopilot targets add --url-env`` stores them."""
    names = ["default"]
    with psycopg.connect(urls_[0], autocommit=True) as conn:
        for i, url in enumerate(urls_[1:], start=1):
            env = f"AUTOPILOT_BENCH_TARGET_{i}_URL"
            os.environ[env] = url
            names.append(targets_store.add_target(conn, f"t{i}", url_env=env).name)
    return names


def requests(names: list[str], keys: list[str]) -> list[backfill.RunRequest]:
    """One run per target over all its ``keys`` (target x hour partitions)."""
    return [backfill.RunRequest("health_hourly_job", keys[0], keys[-1], target=name) for name in names]


def counts(pipeline_url: str) -> dict[str, int]:
    """Rows per (table, target) in the pipeline database."""
    with psycopg.connect(pipeline_url) as conn:
        return {
            f"{table}[{target}]": n
            for table in TABLES
            for target, n in conn.execute(f"SELECT target, count(*) FROM {table} GROUP BY target").fetchall()
        }


#: Root PIDs of the processes whose CPU each backfill reports by role (``proc_cpu``): Postgres, Redis and,
#: while they run, the workers.
ROLES: dict[str, list[int]] = {}


def with_runs() -> dict[str, list[int]]:
    """The roles, with our other children as the run processes (multiprocessing's fork server forks them)."""
    known = {pid for pids in ROLES.values() for pid in pids}
    return {**ROLES, "runs": [pid for pid in proc_cpu.children(os.getpid()) if pid not in known]}


def children_cpu_s() -> float:
    """CPU seconds of every finished, waited-for child process tree (run processes, workers and their pools)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: Every database of the benchmark's server (the targets' and Dagster's), vacuumed before each backfill.
DATABASES: list[str] = []


def settle() -> float:
    """``VACUUM ANALYZE`` every database before a backfill, as pgbench vacuums before each run; seconds taken.

    Each target was just loaded with a day of demo data (and each backfill rewrites a day of tables), so
    Postgres's autovacuum had whole databases to work through in the minutes that follow, one at a time:
    sampled, it was vacuuming the demo tables of one target or another during most backfills, a CPU cost
    that fell on whichever backfill it overlapped (2-worker backfills of the same code took 3.9 or 5.1 s).
    A monitored database in service is not freshly bulk-loaded; every backfill now starts from the same
    state."""
    started = time.perf_counter()
    for url in DATABASES:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def timed_backfill(
    label: str, reqs: list[backfill.RunRequest], parallel_runs: int, executor: str
) -> dict[str, Any]:
    log(f"{label}: databases vacuumed in {settle():.1f} s")
    os.environ[executors.EXECUTOR_ENV] = executor
    load_before = os.getloadavg()[0]
    cpu_before = children_cpu_s()
    roles_before = proc_cpu.snapshot(with_runs())
    started = time.perf_counter()
    summaries = backfill.run_backfill(reqs, parallel_runs=parallel_runs)
    wall = time.perf_counter() - started
    roles = proc_cpu.delta(roles_before, proc_cpu.snapshot(with_runs()))
    # the run processes: the fork server's tree, and any child of ours reaped meanwhile
    roles["runs"] += children_cpu_s() - cpu_before
    run_cpu = roles["runs"]  # the workers are added later
    failed = [s for s in summaries if not s.success]
    if failed:
        raise SystemExit(f"{label}: {len(failed)} run(s) failed, e.g. {failed[0]}")
    result = {
        "label": label,
        "wall_s": wall,
        "cpu_s": run_cpu,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "roles": roles,
    }
    shares = ", ".join(f"{k} {v:.1f}" for k, v in roles.items())
    log(f"{label}: {wall:.1f} s (load {load_before:.2f} -> {result['load_after']:.2f}); CPU s: {shares}")
    return result


def with_workers(count: int, redis: LocalRedis, root: Path, label: str, body: Any) -> Any:
    """``body()`` with ``count`` workers running; their CPU (start, load, steps) is added to the single
    result ``body`` returns, or spread over a list of results by their share of the wall time."""
    workers = LocalWorkers(count, dict(os.environ), root / "workers" / label, loglevel="INFO")
    workers.start(redis.url)
    ROLES["workers"] = [p.pid for p in workers.processes]
    try:
        result = body()
    finally:
        ROLES.pop("workers", None)
        before = children_cpu_s()
        workers.stop(grace_s=30.0)
        worker_cpu = children_cpu_s() - before
    entries = result if isinstance(result, list) else [result]
    total_wall = sum(e["wall_s"] for e in entries) or 1.0
    for entry in entries:
        entry["cpu_s"] += worker_cpu * entry["wall_s"] / total_wall
    return result


def one_partition(target: str, key: str, repeat: int = 3) -> float:
    """Median wall time of one hour of one target, in this process (no process start in the figure)."""
    import dagster as dg

    os.environ[executors.EXECUTOR_ENV] = "in_process"
    (request,) = requests([target], [key])
    times = []
    with dg.DagsterInstance.get() as instance:
        runner.ensure_targets(instance)
        for _ in range(repeat):
            started = time.perf_counter()
            if not backfill.execute(request).success:
                raise SystemExit("one-partition run failed")
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {"cpus": str(os.cpu_count()), "cpu": cpu, "python": platform.python_version()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from autopilot_pipeline.postgres.embedded import EmbeddedPostgres

    root = Path(tempfile.mkdtemp(prefix="autopilot-bench-scale-"))
    os.chmod(root, 0o755)  # the embedded server runs as its own user when we are root
    state = root / "state"
    os.environ["AUTOPILOT_STATE_DIR"] = str(state)
    os.environ[executors.VISIBILITY_TIMEOUT_ENV] = "600"
    pg = EmbeddedPostgres(root / "postgres", fast=True)
    redis = LocalRedis(root / "redis")
    results: dict[str, Any] = {
        "machine": machine(),
        "targets": args.targets,
        "hours": args.hours,
        "components": args.components,
        "app_scale": args.app_scale,
        "parallel_runs": args.parallel_runs,
        "repeat": args.repeat,
    }
    pg.start()
    ROLES["postgres"] = [int((pg.pgdata / "postmaster.pid").read_text().split()[0])]
    try:
        redis.start()
        ROLES["redis"] = [redis.process.pid]
        os.environ[executors.REDIS_URL_ENV] = redis.url
        log(f"creating {args.targets} target databases (demo data)")
        databases = [create_target(pg.url(), i, args.components, args.app_scale) for i in range(args.targets)]
        os.environ["AUTOPILOT_DATABASE_URL"] = databases[0]
        server.ensure_database(pg.url(), "dagster")
        DATABASES[:] = [*databases, urls.with_database(pg.url(), "dagster")]
        runner.configure_environment(server.Database(url=urls.with_database(pg.url(), "dagster")))
        os.environ["AUTOPILOT_DATABASE_URL"] = databases[0]  # the pipeline's database: target default
        names = register_targets(databases)
        keys = hours(args.hours)
        reqs = requests(names, keys)
        first_reqs = requests(names, hours(2 * args.hours)[: args.hours])  # the day before
        results["one_partition_before_s"] = one_partition("default", keys[-1])

        def two_backfills(label: str, executor: str) -> list[dict[str, Any]]:
            """The day before, then ``--repeat`` times the day: the first shows the start, the others the
            steady state (their median is the executor's figure)."""
            first = timed_backfill(f"{label}, {FIRST}", first_reqs, args.parallel_runs, executor)
            return [first] + [
                timed_backfill(f"{label} #{i}", reqs, args.parallel_runs, executor)
                for i in range(1, args.repeat + 1)
            ]

        rows = two_backfills("in-process executor", "in_process")
        expected = counts(databases[0])
        for count in (1, 2):
            label = f"celery, {count} worker{'s' if count > 1 else ''}"
            rows += with_workers(
                count,
                redis,
                root,
                label.replace(", ", "_").replace(" ", ""),
                lambda label=label: two_backfills(label, "celery"),
            )
            if counts(databases[0]) != expected:
                raise SystemExit(f"{label}: row counts differ from the in-process backfill")
        results["rows"] = rows
        results["expected_rows"] = expected
        sizes = [n for n in (1, 2, 4) if n < args.targets] if args.scaling else []

        def scaling() -> list[dict[str, Any]]:
            out = []
            for n in sizes:
                result = timed_backfill(f"{n} targets", reqs[:n], args.parallel_runs, "celery")
                out.append({"targets": n, **result})
            return out

        growth = with_workers(2, redis, root, "scaling", scaling) if sizes else []
        growth.append({"targets": args.targets, **median_row(rows, "celery, 2 workers")})
        for entry in growth:
            entry["per_partition_s"] = entry["wall_s"] / (entry["targets"] * args.hours)
        results["growth"] = growth
        results["one_partition_after_s"] = one_partition("default", keys[-1])
    finally:
        redis.stop()
        pg.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return results


def median_row(rows: list[dict[str, Any]], label: str) -> dict[str, Any]:
    """The backfill of median wall time among the repeats of ``label`` (the lower middle one of an even
    number)."""
    repeats = sorted((r for r in rows if r["label"].startswith(f"{label} #")), key=lambda r: r["wall_s"])
    return repeats[(len(repeats) - 1) // 2]


def report(results: dict[str, Any], command: str) -> str:
    rows = {r["label"]: r for r in results["rows"]}
    one, two, in_process = (
        median_row(results["rows"], label)["wall_s"]
        for label in ("celery, 1 worker", "celery, 2 workers", "in-process executor")
    )
    one_first, two_first = (rows[f"celery, {n}, {FIRST}"]["wall_s"] for n in ("1 worker", "2 workers"))
    ratios = [
        r1["wall_s"] / r2["wall_s"]
        for r1, r2 in zip(
            (r for r in results["rows"] if r["label"].startswith("celery, 1 worker #")),
            (r for r in results["rows"] if r["label"].startswith("celery, 2 workers #")),
            strict=True,
        )
    ]
    partitions = results["targets"] * results["hours"]
    lines = [
        f"Command: `{command}`  ",
        f"Machine: {results['machine']['cpus']} cores ({results['machine']['cpu']}), Python "
        f"{results['machine']['python']}; {results['targets']} targets x {results['hours']} hourly "
        f"partitions = {partitions} partitions of {results['components']} components at app scale "
        f"{results['app_scale']:g}, {sum(results['expected_rows'].values()):,} rows written by each executor's backfills "
        f"(the day before, then {results['repeat']} times the day measured); {results['parallel_runs']} runs at once",
        "",
        "| backfill | wall time | per partition | CPU s (runs + workers) | load avg before → after |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['label']} | {r['wall_s']:.1f} s | {r['wall_s'] / partitions * 1000:.0f} ms | "
            f"{r['cpu_s']:.0f} | {r['load_before']:.2f} → {r['load_after']:.2f} |"
        )
    lines += [
        "",
        "CPU seconds during each backfill by role (workers: main and pool processes, started before; the "
        "machine: every process on it, other users' too):",
        "",
        "| backfill | run processes | workers | Redis | Postgres | driver | machine busy |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["rows"]:
        c = r["roles"]
        lines.append(
            f"| {r['label']} | {c['runs']:.1f} | {c.get('workers', 0.0):.1f} | {c['redis']:.1f} | "
            f"{c['postgres']:.1f} | {c['driver']:.1f} | {c['machine']:.1f} |"
        )
    lines += [
        "",
        f"2 workers vs 1: **{one / two:.2f}x** (goal ≥ 1.5x; medians of {results['repeat']} backfills on "
        f"workers that have served one; repeat by repeat {', '.join(f'{x:.2f}' for x in ratios)}x); "
        f"{one_first / two_first:.2f}x on the first backfill after the workers start; in-process vs 2 "
        f"workers: {in_process / two:.2f}x.",
        "",
        "| targets (2 workers) | wall time | per (target, hour) partition | CPU per partition |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for g in results["growth"]:
        per_cpu = g["cpu_s"] / (g["targets"] * results["hours"]) * 1000
        lines.append(
            f"| {g['targets']} | {g['wall_s']:.1f} s | {g['per_partition_s'] * 1000:.0f} ms | {per_cpu:.0f} ms |"
        )
    lines += [
        "",
        f"One hour of one target alone (in process, median of 3): {results['one_partition_before_s']:.2f} s "
        f"before any backfill, {results['one_partition_after_s']:.2f} s after all of them.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=8, help="monitored targets (default 8)")
    parser.add_argument("--hours", type=int, default=24, help="hourly partitions per target (default 24)")
    parser.add_argument(
        "--components", type=int, default=6, help="components per target (default 6, as `autopilot demo`)"
    )
    parser.add_argument(
        "--app-scale",
        type=float,
        default=1.0,
        help="share of the demo's app traffic (default 1.0, as `autopilot demo`; 0.01 = the earlier runs)",
    )
    parser.add_argument(
        "--parallel-runs",
        type=int,
        default=background_runs_at_once(),
        help="runs at once (default: the run queue's limit for background runs in dagster.yaml, %(default)s)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="backfills of the measured day per executor (default 3)"
    )
    parser.add_argument("--no-scaling", dest="scaling", action="store_false", help="skip 1, 2, 4 targets")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs of the workers)")
    args = parser.parse_args(argv)
    if min(args.targets, args.hours, args.parallel_runs, args.repeat) < 1:
        parser.error("--targets, --hours, --parallel-runs and --repeat must be at least 1")
    command = "PYTHONPATH=. .venv/bin/python bench/bench_scale.py " + " ".join(argv or sys.argv[1:])
    results = run(args)
    print(report(results, command.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
