"""Hand-run measurement of foreign-key indexes, drop proposals and realized savings (issue 13, points 4, 6, 7).

    PYTHONPATH=. python bench/bench_index_drops.py [--url URL]

Builds the workloads of ``tests/index_workloads/set_and_drops.py`` in a fresh database ``bench_index_advice``
on the server of ``--url`` (default: a throw-away embedded PostgreSQL 18, which preloads pg_stat_statements), runs the
profiling steps as the daily run does (statistics window + catalog look, slow-query analysis,
recommendations) and prints: the foreign-key advice and the DELETE time before/after applying it; the drop
proposals; an index created by hand and its realized saving beside the predicted one. Numbers go to
docs/PERFORMANCE_TUNING.md.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from autopilot_pipeline.postgres import migrate, urls
from autopilot_pipeline.postgres.embedded import EmbeddedPostgres
from autopilot_pipeline.profiling.settings import ProfilingSettings
from autopilot_pipeline.profiling.store.recommendations import (
    generate_recommendations,
    read_open_recommendations,
)
from autopilot_pipeline.profiling.store.savings import read_realized_savings, track_applied_indexes
from autopilot_pipeline.profiling.store.slow_queries import analyze_slow_queries, write_slow_queries
from autopilot_pipeline.profiling.store.statements import (
    collect_query_stats,
    latest_query_stats,
    write_query_stats,
)
from tests.index_workloads import set_and_drops as w


def profile(conn: psycopg.Connection, settings: ProfilingSettings) -> float:
    began = time.perf_counter()
    with conn.transaction():
        result = collect_query_stats(conn, settings, store_snapshot=True)
        write_query_stats(conn, result)
        track_applied_indexes(conn, at=result.window_end)
    analysis = analyze_slow_queries(conn, latest_query_stats(conn), settings)
    write_slow_queries(conn, analysis)
    generate_recommendations(conn, settings, analysis)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=None, help="a server URL (any database on it); default: embedded")
    args = parser.parse_args()
    if args.url:
        run(args.url)
        return
    root = Path(tempfile.mkdtemp(prefix="bench-index-advice-"))
    embedded = EmbeddedPostgres(root, fast=True)  # a throw-away server of our own, as the tests use
    embedded.start()
    try:
        run(embedded.url())
    finally:
        embedded.stop()
        shutil.rmtree(root, ignore_errors=True)


def run(url: str) -> None:
    name = "bench_index_advice"
    with psycopg.connect(urls.with_database(url, "postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = urls.with_database(url, name)
    migrate.migrate(target)
    settings = ProfilingSettings(min_mean_ms=0.0)
    with psycopg.connect(target, autocommit=True) as conn:
        began = time.perf_counter()
        w.build_foreign_keys(conn)
        w.build_drops(conn)
        w.build_savings(conn)
        print(f"workloads built in {time.perf_counter() - began:.1f} s")
        profile(conn, settings)
        w.delete_accounts(conn, w.DELETABLE[:20])
        w.run_drops_queries(conn)
        w.read_sensors(conn, 40)
        print(f"profiling run in {profile(conn, settings):.2f} s")

        recs = read_open_recommendations(conn)
        fk = [r for r in recs if r["metadata"].get("reason") == "foreign_key"]
        victims = w.DELETABLE[100:110]
        before = min(w.delete_ms(conn, victims) for _ in range(3))
        for r in fk:
            d = r["metadata"]["details"]
            print(
                f"  FK index {r['table_name']} ({', '.join(r['metadata']['index_columns'])}): {r['priority']}; "
                f"predicted {d['predicted_saving_pct']} % of the deletes' time, ~{d['estimated_size_bytes'] / 1048576:.1f} MB"
            )
            conn.execute(r["action_sql"])
        conn.execute("ANALYZE fk.invoices, fk.sessions")
        after = min(w.delete_ms(conn, victims) for _ in range(3))
        print(
            f"DELETE of 10 accounts (EXPLAIN ANALYZE, RI triggers included): {before:.1f} ms -> {after:.2f} ms "
            f"({before / after:.0f}x)"
        )

        drops = [r for r in recs if r["recommendation_type"] in ("unused_index", "duplicate_index")]
        print(
            f"drop proposals with the default 7-day minimum: {sorted(r['recommendation_key'] for r in drops)}"
        )
        generate_recommendations(conn, settings.model_copy(update={"unused_min_stats_days": 0.0}))
        drops = [
            r
            for r in read_open_recommendations(conn)
            if r["recommendation_type"] in ("unused_index", "duplicate_index")
        ]
        print(f"... with no minimum: {sorted(r['recommendation_key'] for r in drops)}")

        conn.execute("CREATE INDEX readings_by_sensor ON rs.readings (sensor_id)")
        profile(conn, settings)
        w.read_sensors(conn, 40, offset=11)
        profile(conn, settings)
        for s in read_realized_savings(conn):
            realized = "-" if s["realized_saving_pct"] is None else f"{s['realized_saving_pct']:.1f} %"
            after = "-" if s["mean_ms_after"] is None else f"{s['mean_ms_after']:.3f}"
            print(
                f"  {s['schema_name']}.{s['index_name']} ({s['source']}): {s['status']}; predicted "
                f"{s['predicted_saving_pct']} %, realized {realized} (mean {s['mean_ms_before']:.2f} -> {after} ms, "
                f"{s['calls_before']} / {s['calls_after']} calls)"
            )


if __name__ == "__main__":
    main()
