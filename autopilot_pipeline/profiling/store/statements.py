"""Query statistics at the database edge: pg_stat_statements snapshots and deltas, the app's query log, and
the per-fingerprint statistics table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import polars as pl
import psycopg
from psycopg import sql

from autopilot_pipeline.postgres.io import copy_frame, epoch_us, read_frame, serialize_writes
from autopilot_pipeline.profiling.parsing import ParsedQuery, fingerprint_queries
from autopilot_pipeline.profiling.settings import SYSTEM_SCHEMAS, ProfilingSettings
from autopilot_pipeline.profiling.statements import (
    diff_statements,
    empty_query_stats,
    mark_new_fingerprints,
    query_stats,
    statements_columns,
)

IGNORED_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast", "automation", "analytics"})
EXPLAIN_TIMEOUT = "10s"
TS = pl.Datetime("us", "UTC")


def db_now(conn: psycopg.Connection) -> datetime:
    """The server's clock: windows and "since" times agree with timestamps the server wrote."""
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0].astimezone(UTC)


# --------------------------------------------------------------------------------------------- pg_stat_statements


@dataclass(frozen=True)
class StatementsStatus:
    """Whether pg_stat_statements can be read here, and if not, what to do about it."""

    available: bool
    message: str
    schema: str | None = None
    columns: dict[str, str | None] = field(default_factory=dict)
    has_info: bool = False


def statements_status(conn: psycopg.Connection) -> StatementsStatus:
    row = conn.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_stat_statements'"
    ).fetchone()
    if row is None:
        offered = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'"
        ).fetchone()
        how = (
            "run CREATE EXTENSION pg_stat_statements (it must also be in shared_preload_libraries)"
            if offered
            else "the server has no pg_stat_statements (install the contrib package)"
        )
        return StatementsStatus(False, f"pg_stat_statements is not installed in this database: {how}")
    schema = row[0]
    view = sql.Identifier(schema, "pg_stat_statements")
    try:
        with conn.transaction():
            conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(view))
    except psycopg.errors.ObjectNotInPrerequisiteState:
        return StatementsStatus(
            False,
            "pg_stat_statements is installed but not loaded: add it to shared_preload_libraries and restart",
            schema,
        )
    except psycopg.errors.InsufficientPrivilege:
        return StatementsStatus(
            False, "no privilege to read pg_stat_statements (grant pg_read_all_stats)", schema
        )
    names = [
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (f'"{schema}".pg_stat_statements',),
        ).fetchall()
    ]
    has_info = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}".pg_stat_statements_info',)
    ).fetchone()[0]  # type: ignore[index]
    try:
        columns = statements_columns(names)
    except ValueError as exc:
        return StatementsStatus(False, str(exc), schema)
    return StatementsStatus(True, "pg_stat_statements is available", schema, columns, bool(has_info))


_SNAPSHOT_SCHEMA: dict[str, pl.DataType] = {
    "userid": pl.Int64(),
    "dbid": pl.Int64(),
    "queryid": pl.Int64(),
    "toplevel": pl.Boolean(),
    "calls": pl.Int64(),
    "total_exec_ms": pl.Float64(),
    "total_plan_ms": pl.Float64(),
    "rows": pl.Int64(),
    "shared_blks_hit": pl.Int64(),
    "shared_blks_read": pl.Int64(),
    "blk_read_ms": pl.Float64(),
    "stats_since": pl.Int64(),
}


def _read_statements(
    conn: psycopg.Connection, status: StatementsStatus
) -> tuple[pl.DataFrame, datetime | None]:
    """This database's pg_stat_statements entries (canonical column names) and the view's last reset."""
    cols = status.columns
    select = []
    for name, dtype in {**_SNAPSHOT_SCHEMA, "query": pl.String()}.items():
        source = cols.get(name)
        if name == "stats_since":
            select.append(
                epoch_us(source, "stats_since") if source else sql.SQL("NULL::bigint AS stats_since")
            )
        elif source is None:
            default = "true" if name == "toplevel" else "NULL"
            select.append(sql.SQL(default + " AS {}").format(sql.Identifier(name)))
        elif dtype == pl.Int64:
            select.append(sql.SQL("{}::bigint AS {}").format(sql.Identifier(source), sql.Identifier(name)))
        else:
            select.append(sql.SQL("{} AS {}").format(sql.Identifier(source), sql.Identifier(name)))
    query = sql.SQL(
        "SELECT {cols} FROM {view} WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).format(
        cols=sql.SQL(", ").join(select), view=sql.Identifier(status.schema or "public", "pg_stat_statements")
    )
    frame = read_frame(conn, query, None, {**_SNAPSHOT_SCHEMA, "query": pl.String()}, ("stats_since",))
    reset = None
    if status.has_info:
        row = conn.execute(
            sql.SQL("SELECT stats_reset FROM {}").format(
                sql.Identifier(status.schema or "public", "pg_stat_statements_info")
            )
        ).fetchone()
        reset = row[0].astimezone(UTC) if row and row[0] else None
    return frame, reset


def _previous_snapshot(conn: psycopg.Connection) -> tuple[pl.DataFrame, datetime | None, datetime | None]:
    """The stored snapshot, when it was taken and the stats_reset it saw."""
    schema = {**_SNAPSHOT_SCHEMA, "captured_at": pl.Int64(), "stats_reset": pl.Int64()}
    query = sql.SQL(
        "SELECT userid, dbid, queryid, toplevel, calls, total_exec_ms, total_plan_ms, rows, shared_blks_hit, "
        "shared_blks_read, blk_read_ms, {since}, {captured}, {reset} FROM automation.pg_stat_statements_snapshots"
    ).format(since=epoch_us("stats_since"), captured=epoch_us("captured_at"), reset=epoch_us("stats_reset"))
    frame = read_frame(conn, query, None, schema, ("stats_since", "captured_at", "stats_reset"))
    if frame.height == 0:
        return frame.drop("captured_at", "stats_reset"), None, None
    return frame.drop("captured_at", "stats_reset"), frame["captured_at"].max(), frame["stats_reset"].max()


def _store_snapshot(
    conn: psycopg.Connection, current: pl.DataFrame, captured: datetime, reset: datetime | None
) -> None:
    conn.execute("DELETE FROM automation.pg_stat_statements_snapshots")
    copy_frame(
        conn,
        "automation.pg_stat_statements_snapshots",
        current.drop("query").with_columns(
            pl.lit(captured).cast(TS).alias("captured_at"), pl.lit(reset).cast(TS).alias("stats_reset")
        ),
    )


# --------------------------------------------------------------------------------------------- query statistics


@dataclass
class QueryStatsResult:
    """Per-fingerprint statistics of one run, both sources, and what was skipped and why.

    ``bad_queries`` counts unusable ``query_performance`` texts by kind (empty, too_long, odd_encoding,
    unparseable); they are skipped, never fatal."""

    stats: pl.DataFrame
    bad_queries: dict[str, int]
    rows_read: int
    statements: StatementsStatus
    window_start: datetime
    window_end: datetime
    statements_window_start: datetime | None = None
    statements_read: int = 0
    statements_skipped: dict[str, int] = field(default_factory=dict)  # pg_stat_statements texts not parsed
    parsed: dict[str, ParsedQuery] = field(default_factory=dict)

    @property
    def bad_total(self) -> int:
        return sum(self.bad_queries.values())


_LOG_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64(),
    "query": pl.String(),
    "execution_time_ms": pl.Float64(),
    "rows_returned": pl.Int64(),
    "source": pl.String(),
    "logged_at": pl.Int64(),
}


def read_query_log(conn: psycopg.Connection, start: datetime, end: datetime) -> pl.DataFrame:
    """``automation.query_performance`` rows logged in ``[start, end)`` (an index range on logged_at)."""
    query = sql.SQL(
        "SELECT id, query, execution_time_ms, rows_returned, source, {logged} FROM automation.query_performance "
        "WHERE logged_at >= %s AND logged_at < %s"
    ).format(logged=epoch_us("logged_at"))
    return read_frame(conn, query, (start, end), _LOG_SCHEMA, ("logged_at",))


def _known_fingerprints(conn: psycopg.Connection, fingerprints: Sequence[str]) -> dict[str, datetime]:
    if not fingerprints:
        return {}
    rows = conn.execute(
        "SELECT fingerprint, first_seen_at FROM automation.query_fingerprints WHERE fingerprint = ANY(%s)",
        (list(fingerprints),),
    ).fetchall()
    return {fp: seen.astimezone(UTC) for fp, seen in rows}


def _with_window(stats: pl.DataFrame, source: str, start: datetime | None, end: datetime) -> pl.DataFrame:
    return stats.with_columns(
        pl.lit(source).alias("source"),
        pl.lit(start).cast(TS).alias("window_start"),
        pl.lit(end).cast(TS).alias("window_end"),
    )


def _user_table(name: str) -> bool:
    schema, _, table = name.rpartition(".")
    return schema not in SYSTEM_SCHEMAS and not table.startswith("pg_")


def _statement_stats(
    delta: pl.DataFrame, window_end: datetime
) -> tuple[pl.DataFrame, dict[str, int], dict[str, ParsedQuery]]:
    """pg_stat_statements deltas per fingerprint. Utility statements (COPY, SET, DDL) and statements on no
    user table (``SELECT 1``, catalog lookups) are left out: no index or query change concerns them."""
    if delta.height == 0:
        return empty_query_stats(), {}, {}
    fingerprinted, bad, parsed = fingerprint_queries(delta)
    keep = {
        fp for fp, q in parsed.items() if q.statement != "utility" and any(_user_table(t) for t in q.tables)
    }
    rows = fingerprinted.filter(pl.col("fingerprint").is_in(list(keep)))
    if rows.height == 0:
        return empty_query_stats(), bad, {}
    stats = (
        rows.sort("total_exec_ms", descending=True, maintain_order=True)
        .group_by("fingerprint", maintain_order=True)
        .agg(
            pl.col("calls").sum().cast(pl.Int64),
            pl.col("total_exec_ms").sum().alias("total_ms"),
            pl.col("rows").sum().cast(pl.Int64),
            pl.col("query").first().alias("example_query"),
        )
        .with_columns(
            (pl.col("total_ms") / pl.col("calls")).alias("mean_ms"),
            pl.lit(None, pl.Float64).alias("p95_ms"),
            pl.lit(None, pl.Float64).alias("max_ms"),
            pl.lit(window_end).cast(TS).alias("first_seen_at"),
            pl.lit(window_end).cast(TS).alias("last_seen_at"),
        )
    )
    meta = pl.DataFrame(
        {
            "fingerprint": list(keep),
            "normalized_query": [parsed[f].normalized for f in keep],
            "statement_type": [parsed[f].statement for f in keep],
            "tables": [",".join(parsed[f].tables) for f in keep],
        },
        schema={
            "fingerprint": pl.String,
            "normalized_query": pl.String,
            "statement_type": pl.String,
            "tables": pl.String,
        },
    )
    stats = stats.join(meta, on="fingerprint", how="left").select(empty_query_stats().columns)
    return stats, bad, {f: parsed[f] for f in keep}


def collect_query_stats(
    conn: psycopg.Connection,
    settings: ProfilingSettings | None = None,
    *,
    end: datetime | None = None,
    store_snapshot: bool = False,
) -> QueryStatsResult:
    """Per-fingerprint statistics from both sources.

    The app log is read for ``[end - lookback, end)``. pg_stat_statements is diffed against the stored
    snapshot; with ``store_snapshot`` the current counters replace it, so the next run's window starts here
    (the asset does that; ``optimize_system`` only looks). Call inside a transaction to make the diff and
    the snapshot write atomic.
    """
    settings = settings or ProfilingSettings()
    end = end or db_now(conn)
    start = end - timedelta(hours=settings.lookback_hours)
    log = read_query_log(conn, start, end)
    fingerprinted, bad, parsed = fingerprint_queries(log)
    app = query_stats(fingerprinted, parsed)
    app = mark_new_fingerprints(
        app, _known_fingerprints(conn, app["fingerprint"].to_list()), start, settings.slow_ms
    )
    frames = [_with_window(app, "app_log", start, end)]
    status = statements_status(conn)
    statements_start: datetime | None = None
    statements_read = 0
    statements_skipped: dict[str, int] = {}
    if status.available:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('autopilot.pg_stat_statements_snapshot'))")
        current, reset = _read_statements(conn, status)
        statements_read = current.height
        previous, captured, previous_reset = _previous_snapshot(conn)
        reset_moved = reset is not None and previous_reset is not None and reset > previous_reset
        delta = diff_statements(previous if captured else None, current, reset=reset_moved)
        statements_start = (reset if reset_moved else captured) if captured else reset
        pgss, pgss_bad, pgss_parsed = _statement_stats(delta, end)
        statements_skipped = pgss_bad
        for fp, q in pgss_parsed.items():
            parsed.setdefault(fp, q)
        known = _known_fingerprints(conn, pgss["fingerprint"].to_list())
        pgss = mark_new_fingerprints(pgss, known, statements_start or end, settings.slow_ms)
        if (
            captured is None
        ):  # the first snapshot is a baseline: everything since the last reset, nothing "new"
            pgss = pgss.with_columns(pl.lit(False).alias("is_new"))
        frames.append(_with_window(pgss, "pg_stat_statements", statements_start, end))
        if store_snapshot:
            _store_snapshot(conn, current, end, reset)
    stats = pl.concat(frames, how="vertical_relaxed")
    return QueryStatsResult(
        stats,
        bad,
        log.height,
        status,
        start,
        end,
        statements_start,
        statements_read,
        statements_skipped,
        parsed,
    )


_STATS_COLUMNS = (
    "window_start",
    "window_end",
    "source",
    "fingerprint",
    "calls",
    "total_ms",
    "mean_ms",
    "p95_ms",
    "max_ms",
    "rows",
    "is_slow",
    "is_new",
    "first_seen_at",
    "statement_type",
    "tables",
    "normalized_query",
    "example_query",
)


def write_query_stats(conn: psycopg.Connection, result: QueryStatsResult, retention_days: int = 90) -> int:
    """Store the run's statistics (replacing a run with the same window end) and remember fingerprints."""
    with conn.transaction():
        serialize_writes(conn, "automation.query_stats")
        return _write_query_stats(conn, result, retention_days)


def _write_query_stats(conn: psycopg.Connection, result: QueryStatsResult, retention_days: int) -> int:
    stats = result.stats
    conn.execute(
        "DELETE FROM automation.query_stats WHERE target = 'default' AND (window_end = %s OR window_end < %s)",
        (result.window_end, result.window_end - timedelta(days=retention_days)),
    )
    written = copy_frame(conn, "automation.query_stats", stats.select(_STATS_COLUMNS))
    if stats.height:
        seen = (
            stats.sort("source")  # app_log first: its example has literals
            .group_by("fingerprint", maintain_order=True)
            .agg(
                pl.col("normalized_query").first(),
                pl.col("statement_type").first(),
                pl.col("tables").first(),
                pl.col("example_query").first(),
                pl.col("first_seen_at").min(),
                pl.col("window_end").max().alias("last_seen_at"),
            )
        )
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS autopilot_seen (LIKE automation.query_fingerprints) ON COMMIT DROP"
        )
        copy_frame(conn, "pg_temp.autopilot_seen", seen)
        conn.execute(
            "INSERT INTO automation.query_fingerprints SELECT * FROM pg_temp.autopilot_seen "
            "ON CONFLICT (fingerprint) DO UPDATE SET "
            "first_seen_at = least(query_fingerprints.first_seen_at, excluded.first_seen_at), "
            "last_seen_at = greatest(query_fingerprints.last_seen_at, excluded.last_seen_at), "
            "example_query = coalesce(query_fingerprints.example_query, excluded.example_query)"
        )
        conn.execute("DROP TABLE pg_temp.autopilot_seen")
    return written


def latest_query_stats(conn: psycopg.Connection) -> pl.DataFrame:
    """The most recent window of each source from ``automation.query_stats``."""
    schema: dict[str, pl.DataType] = {
        "window_start": pl.Int64(),
        "window_end": pl.Int64(),
        "source": pl.String(),
        "fingerprint": pl.String(),
        "calls": pl.Int64(),
        "total_ms": pl.Float64(),
        "mean_ms": pl.Float64(),
        "p95_ms": pl.Float64(),
        "max_ms": pl.Float64(),
        "rows": pl.Int64(),
        "is_slow": pl.Boolean(),
        "is_new": pl.Boolean(),
        "first_seen_at": pl.Int64(),
        "statement_type": pl.String(),
        "tables": pl.String(),
        "normalized_query": pl.String(),
        "example_query": pl.String(),
    }
    query = sql.SQL(
        "SELECT {ws}, {we}, source, fingerprint, calls, total_ms, mean_ms, p95_ms, max_ms, rows, is_slow, is_new, "
        "{fs}, statement_type, tables, normalized_query, example_query FROM automation.query_stats q "
        "WHERE target = 'default' AND window_end = (SELECT max(window_end) FROM automation.query_stats l "
        "WHERE l.target = 'default' AND l.source = q.source)"
    ).format(ws=epoch_us("window_start"), we=epoch_us("window_end"), fs=epoch_us("first_seen_at"))
    return read_frame(conn, query, None, schema, ("window_start", "window_end", "first_seen_at"))
