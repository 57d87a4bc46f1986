"""Hand-run benchmarks of performance profiling.

    python bench/bench_profiling.py fingerprint [--days 7]        # parser throughput on the demo workload
    python bench/bench_profiling.py advice [--url URL] [--days 3]  # demo app: advice vs the answer key,
                                                                   # then apply it and time the queries

``advice`` loads the demo data into a fresh database ``bench_profiling`` on the server of ``--url`` (default:
the embedded server), runs the profiling steps with default settings, compares the recommended indexes with
the demo's answer key (``demo.queries.QUERY_SHAPES``), builds them with CREATE INDEX CONCURRENTLY and reports
each query shape's EXPLAIN ANALYZE time before and after. Numbers go to docs/PERFORMANCE_TUNING.md.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from autopilot_pipeline.demo import store as demo_load
from autopilot_pipeline.demo.generator import generate
from autopilot_pipeline.demo.queries import QUERY_SHAPES
from autopilot_pipeline.postgres import migrate, server, urls
from autopilot_pipeline.profiling.indexes import candidate_from_key
from autopilot_pipeline.profiling.parsing import fingerprint_queries
from autopilot_pipeline.profiling.settings import ProfilingSettings
from autopilot_pipeline.profiling.statements import query_stats
from autopilot_pipeline.profiling.store.catalog import explain_analyze_ms
from autopilot_pipeline.profiling.store.recommendations import (
    generate_recommendations,
    read_open_recommendations,
)
from autopilot_pipeline.profiling.store.remediation import create_index_concurrently
from autopilot_pipeline.profiling.store.slow_queries import analyze_slow_queries, write_slow_queries
from autopilot_pipeline.profiling.store.statements import (
    collect_query_stats,
    latest_query_stats,
    write_query_stats,
)


def fingerprint(days: int) -> None:
    data = generate(days=days, components=4, seed=42, end=datetime(2026, 3, 1, tzinfo=UTC))
    frame = data.query_performance
    distinct = frame["query"].n_unique()
    began = time.perf_counter()
    out, bad, parsed = fingerprint_queries(frame)
    parse_s = time.perf_counter() - began
    began = time.perf_counter()
    stats = query_stats(out, parsed)
    stats_s = time.perf_counter() - began
    print(f"{frame.height:,} logged queries, {distinct:,} distinct texts -> {len(parsed)} fingerprints")
    print(f"fingerprint + column extraction: {parse_s:.2f} s ({distinct / parse_s:,.0f} distinct texts/s)")
    print(f"per-fingerprint statistics: {stats_s * 1000:.0f} ms for {stats.height} fingerprints")
    print(f"skipped: {bad} (the demo injects {data.bad_queries})")


def advice(url: str | None, days: int) -> None:
    if url is None:
        db = server.resolve()
        url = db.url
    name = "bench_profiling"
    with psycopg.connect(urls.with_database(url, "postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = urls.with_database(url, name)
    migrate.migrate(target)
    demo_load.load_demo_data(
        target,
        days=days,
        components=4,
        seed=42,
        replace=False,
        end=None,
        progress=lambda _: None,
        app_scale=1.0,
    )
    settings = ProfilingSettings(lookback_hours=24.0 * days)
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        began = time.perf_counter()
        with conn.transaction():
            stats = collect_query_stats(conn, settings, store_snapshot=True)
            write_query_stats(conn, stats)
        analysis = analyze_slow_queries(conn, latest_query_stats(conn), settings)
        write_slow_queries(conn, analysis)
        generate_recommendations(conn, settings, analysis)
        elapsed = time.perf_counter() - began
        recs = [r for r in read_open_recommendations(conn) if r["recommendation_type"] == "missing_index"]
        print(f"{stats.rows_read:,} logged queries analyzed in {elapsed:.2f} s; {analysis.message}")
        expected = {
            f"missing_index:demo.{v.split(' ')[0]}({v.split('(')[1].rstrip(')').replace(', ', ',')})"
            for v in QUERY_SHAPES.values()
            if v
        }
        got = {r["recommendation_key"] for r in recs}
        print(
            f"answer key: {len(expected)} indexes; recommended {len(got)}; found {len(got & expected)}; "
            f"extra {sorted(got - expected)}; missed {sorted(expected - got)}"
        )
        examples = {}
        for row in analysis.frame.filter(analysis.frame["index_key"].is_not_null()).iter_rows(named=True):
            examples.setdefault(row["index_key"], row["example_query"])
        before = {k: explain_analyze_ms(conn, q) for k, q in examples.items()}
        for r in recs:
            cand = candidate_from_key(r["recommendation_key"])
            built = create_index_concurrently(conn, cand)
            print(
                f"  built {built.index} in {built.duration_ms:.0f} ms"
                if built.ok
                else f"  failed: {built.error}"
            )
        conn.execute("ANALYZE")
        for key, query in examples.items():
            after = explain_analyze_ms(conn, query)
            est = next((r["estimated_improvement_pct"] for r in recs if r["recommendation_key"] == key), None)
            print(
                f"  {key}: {before[key]:.2f} ms -> {after:.3f} ms "
                f"(measured {100 * (1 - after / before[key]):.1f} % faster; estimated {est} %)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    fp = sub.add_parser("fingerprint")
    fp.add_argument("--days", type=int, default=7)
    adv = sub.add_parser("advice")
    adv.add_argument("--url", default=None, help="a server URL (any database on it); default: embedded")
    adv.add_argument("--days", type=int, default=3)
    args = parser.parse_args()
    if args.what == "fingerprint":
        fingerprint(args.days)
    else:
        advice(args.url, args.days)


if __name__ == "__main__":
    main()
