"""Index advice beyond plain columns on the advice-types workload (issue 13): what is found, how long the
analysis takes, and each expected index's effect measured with EXPLAIN ANALYZE (best of 3, before and after
building it; rolled back), with the estimated and real sizes.

    python bench/bench_index_advice.py [postgres-url-of-a-server-with-hypopg]

Without a URL it starts a throw-away Debian PostgreSQL 15 (needs postgresql-15 and postgresql-15-hypopg).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autopilot_pipeline.postgres import migrate, urls  # noqa: E402
from autopilot_pipeline.profiling.indexes import candidate_from_key  # noqa: E402
from autopilot_pipeline.profiling.parsing import parse_query  # noqa: E402
from autopilot_pipeline.profiling.settings import ProfilingSettings  # noqa: E402
from autopilot_pipeline.profiling.store.catalog import explain_analyze_ms  # noqa: E402
from autopilot_pipeline.profiling.store.recommendations import (  # noqa: E402
    generate_recommendations,
    read_open_recommendations,
)
from autopilot_pipeline.profiling.store.slow_queries import analyze_slow_queries, write_slow_queries  # noqa: E402
from autopilot_pipeline.profiling.store.statements import collect_query_stats  # noqa: E402
from tests.index_workloads import advice_types as w  # noqa: E402

SETTINGS = ProfilingSettings(min_mean_ms=0.0, high_saved_ms=0.0)


def _size(conn: psycopg.Connection, table: str, before: set[str]) -> int:
    rows = conn.execute(
        "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index WHERE indrelid = %s::regclass",
        (table,),
    ).fetchall()
    return sum(size for name, size in rows if name not in before)


def run(server: str) -> None:
    name = f"bench_advice_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = urls.with_database(server, name)
    try:
        migrate.migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            started = time.perf_counter()
            w.build(conn)
            print(f"build: {time.perf_counter() - started:.1f} s")
            w.run_workload(conn)
            started = time.perf_counter()
            with conn.transaction():
                stats = collect_query_stats(conn, SETTINGS, store_snapshot=True)
            analysis = analyze_slow_queries(conn, stats.stats, SETTINGS)
            write_slow_queries(conn, analysis)
            generate_recommendations(conn, SETTINGS)
            print(f"analysis + recommendations: {time.perf_counter() - started:.2f} s")
            found = {r["recommendation_key"]: r for r in read_open_recommendations(conn)}
            by_fp = dict(
                conn.execute("SELECT fingerprint, index_key FROM automation.slow_queries").fetchall()
            )
            print("\n| case | expected | found | before ms | after ms | speed-up | est. size | real size |")
            print("| --- | --- | --- | --- | --- | --- | --- | --- |")
            for case in w.CASES:
                got = {by_fp.get(parse_query(t).fingerprint) for t in case.texts}
                text = case.texts[0]
                cells = [case.name, case.expected or "none", ", ".join(sorted(str(g) for g in got))]
                keys = [case.expected] if case.expected else []
                for key in keys:
                    candidate = candidate_from_key(key)
                    before_ix = {
                        r[0]
                        for r in conn.execute(
                            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass",
                            (candidate.table,),
                        ).fetchall()
                    }
                    before = explain_analyze_ms(conn, text)
                    with conn.transaction(force_rollback=True):
                        conn.execute(candidate.definition(concurrently=False))
                        conn.execute(f"ANALYZE {candidate.table}")
                        after = explain_analyze_ms(conn, text)
                        real = _size(conn, candidate.table, before_ix)
                    est = (found.get(key) or {}).get("metadata", {}).get("estimated_size_bytes")
                    cells += [
                        f"{before:.2f}",
                        f"{after:.3f}",
                        f"{before / max(after, 1e-3):.0f}x",
                        f"{(est or 0) / 1024:.0f} kB",
                        f"{real / 1024:.0f} kB",
                    ]
                print("| " + " | ".join(cells + [""] * (8 - len(cells))) + " |")
            brin = found["missing_index:app.readings(recorded_at)"]["metadata"]["brin_alternative"]
            (text,) = [c.texts[0] for c in w.CASES if c.name == "time_range_readings"][:1]
            before = explain_analyze_ms(conn, text)
            with conn.transaction(force_rollback=True):
                conn.execute("CREATE INDEX bench_brin ON app.readings USING brin (recorded_at)")
                after = explain_analyze_ms(conn, text)
                real = conn.execute("SELECT pg_relation_size('app.bench_brin')").fetchone()[0]
            print(
                f"\nBRIN alternative on app.readings: {before:.2f} ms -> {after:.3f} ms "
                f"({before / max(after, 1e-3):.0f}x), estimated {brin['estimated_size_bytes'] / 1024:.0f} kB, "
                f"real {real / 1024:.0f} kB"
            )
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    if len(sys.argv) > 1:
        run(sys.argv[1])
        return
    from tests.system_postgres import SystemPostgres, available

    if not available(15):
        raise SystemExit(
            "bench_index_advice: error: give a server URL, or install postgresql-15 and its hypopg"
        )
    root = Path(tempfile.mkdtemp(prefix="bench-advice-pg15-"))
    server = SystemPostgres(15, root)
    try:
        run(server.start())
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
