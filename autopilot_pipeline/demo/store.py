"""Load generated demo data into Postgres with COPY, all of it in one transaction.

Either everything lands or nothing changes: with ``replace`` the old rows are truncated in the same
transaction as the load, so a failed load loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import polars as pl
import psycopg
from psycopg import sql

from autopilot_pipeline.demo.generator import DemoSummary, generate
from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.postgres import io, migrate, server

#: Tables the demo owns: truncated by ``replace``. The app tables come first (no foreign keys anywhere).
DEMO_TABLES = (
    "demo.customers",
    "demo.products",
    "demo.orders",
    "demo.order_items",
    "demo.events",
    "demo.incidents",
    "automation.health_log",
    "automation.metric_samples",
    "automation.migration_log",
    "automation.deployment_log",
    "automation.query_performance",
)
#: Tables whose ids the generator supplies; their identity sequences are moved past the loaded ids.
_EXPLICIT_IDS = ("demo.customers", "demo.products", "demo.orders", "demo.order_items", "demo.events")
_REBUILD_INDEXES_FROM = 100_000
_COPY_SLICE = 500_000
_JSON_DEFAULT_COLUMNS = ("metadata", "labels")  # jsonb NOT NULL DEFAULT '{}' in every table that has them
_GUARDED = ("automation.health_log", *_EXPLICIT_IDS)


def _ident(table: str) -> sql.Identifier:
    schema, name = table.split(".", 1)
    return sql.Identifier(schema, name)


def _secondary_indexes(conn: psycopg.Connection, table: str) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the table's indexes that back no constraint."""
    schema, name = table.split(".", 1)
    return conn.execute(
        """
        SELECT ic.relname, pg_get_indexdef(ic.oid)
        FROM pg_index x
        JOIN pg_class ic ON ic.oid = x.indexrelid
        JOIN pg_class tc ON tc.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = tc.relnamespace
        WHERE n.nspname = %s AND tc.relname = %s
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ic.oid)
        ORDER BY ic.relname
        """,
        (schema, name),
    ).fetchall()


def _without_default_json(frame: pl.DataFrame) -> pl.DataFrame:
    """Drop jsonb columns that only hold the column default ``{}``: the server fills them for free."""
    constant = [
        name for name in _JSON_DEFAULT_COLUMNS if name in frame.columns and (frame[name] == "{}").all()
    ]
    return frame.drop(constant)


def _refuse_if_loaded(conn: psycopg.Connection) -> None:
    for table in _GUARDED:
        found = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(_ident(table))).fetchone()
        if found and found[0]:
            raise AutopilotError(
                f"{table} already has data; pass --replace to discard the existing demo and monitoring data "
                "and load new demo data"
            )


def _copy(conn: psycopg.Connection, table: str, frame: pl.DataFrame) -> int:
    """COPY one frame. Big loads drop the secondary indexes first and rebuild them after (one sort instead
    of millions of b-tree inserts); it is all in the caller's transaction, so a failure restores them."""
    indexes = _secondary_indexes(conn, table) if frame.height >= _REBUILD_INDEXES_FROM else []
    schema = table.split(".", 1)[0]
    for name, _definition in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(schema, name)))
    frame = _without_default_json(frame)
    # slices bound the client's memory: copy_frame renders its whole input as one CSV buffer
    written = sum(
        io.copy_frame(conn, table, frame.slice(offset, _COPY_SLICE))
        for offset in range(0, frame.height, _COPY_SLICE)
    )
    for _name, definition in indexes:
        conn.execute(definition)  # type: ignore[arg-type] - pg_get_indexdef output, not user input
    return written


def default_end(now: datetime | None = None) -> datetime:
    """The current time in UTC, rounded down to the minute."""
    return (now or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)


def load_demo_data(
    url: str,
    days: int,
    components: int,
    seed: int,
    replace: bool,
    end: datetime | None = None,
    progress: Callable[[str], None] | None = None,
    app_scale: float = 1.0,
) -> DemoSummary:
    """Generate demo data and COPY it into the database at ``url`` (schema must be migrated).

    Refuses when the tables already hold data unless ``replace`` is set; then truncates the demo's
    tables (identities restarted) and loads, in one transaction.
    """
    say = progress or (lambda _message: None)
    end = default_end() if end is None else end
    began = time.perf_counter()
    rows: dict[str, int] = {}
    with server.connect(url, autocommit=True) as conn:
        migrate.require_current(conn)
        with conn.transaction():
            # one loader at a time, so two concurrent runs cannot both see empty tables
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('autopilot.demo_load'))")
            if not replace:
                _refuse_if_loaded(conn)  # before generating: a refusal should be instant
            say(f"generating {days} day(s) for {components} component(s), seed {seed}")
            try:
                data = generate(days, components, seed, end, app_scale=app_scale)
            except ValueError as exc:
                raise AutopilotError(f"cannot generate demo data: {exc}") from exc
            generated = sum(frame.height for frame in data.tables().values())
            say(f"generated {generated:,} rows in {time.perf_counter() - began:.1f} s")
            if replace:
                tables = sql.SQL(", ").join(_ident(t) for t in DEMO_TABLES)
                conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(tables))
            conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
            for table, frame in data.tables().items():
                started = time.perf_counter()
                rows[table] = _copy(conn, table, frame)
                say(f"loaded {table}: {rows[table]:,} rows in {time.perf_counter() - started:.1f} s")
            for table in _EXPLICIT_IDS:
                conn.execute(
                    sql.SQL(
                        "SELECT setval(pg_get_serial_sequence({}, 'id'), coalesce(max(id), 0) + 1, false) "
                        "FROM {}"
                    ).format(sql.Literal(table), _ident(table))
                )
            for table in DEMO_TABLES:  # fresh planner statistics, so the first queries plan sensibly
                conn.execute(sql.SQL("ANALYZE {}").format(_ident(table)))
    say(f"done in {time.perf_counter() - began:.1f} s")
    return data.summary(rows)
