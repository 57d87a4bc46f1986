"""Bulk movement between Postgres and polars: COPY in both directions, never row-by-row.

- :func:`read_bulk` (window reads of the source tables, up to millions of rows): ADBC's PostgreSQL driver
  runs ``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` and hands Arrow batches to polars, on its own
  connection to the same database. Binary COPY is cheaper for the server than CSV and needs no parse, so
  this is faster than even streaming the CSV into nothing (docs/BENCHMARKS.md).
- :func:`read_frame` (small reads that must see the caller's session: temp tables, open transactions):
  ``COPY ... TO STDOUT`` in CSV on the caller's connection, parsed by polars. Timestamps cross the wire as
  epoch microseconds so nothing depends on the session's date style or time zone.
- Writes serialize a frame to CSV and ``COPY ... FROM STDIN``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import polars as pl
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

_CHUNK = 1 << 20


def epoch_us(column: str, alias: str | None = None) -> sql.Composable:
    """SELECT expression turning a timestamptz column into integer epoch microseconds."""
    return sql.SQL("(extract(epoch FROM {col}) * 1000000)::bigint AS {alias}").format(
        col=sql.Identifier(column), alias=sql.Identifier(alias or column)
    )


def read_frame(
    conn: psycopg.Connection,
    query: sql.Composable | str,
    params: Sequence[Any] | Mapping[str, Any] | None,
    schema: Mapping[str, pl.DataType],
    timestamp_columns: Sequence[str] = (),
) -> pl.DataFrame:
    """Run ``query`` through COPY and return a frame with ``schema``.

    ``timestamp_columns`` must be selected as epoch microseconds (see :func:`epoch_us`); they come back as
    UTC datetimes.
    """
    buffer = io.BytesIO()
    copy_sql = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv)").format(
        sql.SQL(query) if isinstance(query, str) else query
    )
    with conn.cursor() as cur, cur.copy(copy_sql, params) as copy:
        for chunk in copy:
            buffer.write(chunk)
    # Postgres CSV writes booleans as t/f: read them as text, convert after.
    wire_schema = {
        name: pl.Int64() if name in timestamp_columns else pl.String() if dtype == pl.Boolean else dtype
        for name, dtype in schema.items()
    }
    if buffer.tell() == 0:
        frame = pl.DataFrame(schema=wire_schema)
    else:
        buffer.seek(0)
        frame = pl.read_csv(buffer, has_header=False, new_columns=list(wire_schema), schema=wire_schema)
    booleans = [name for name, dtype in schema.items() if dtype == pl.Boolean]
    return frame.with_columns(
        *(pl.from_epoch(pl.col(c), time_unit="us").dt.replace_time_zone("UTC") for c in timestamp_columns),
        *(pl.col(c) == "t" for c in booleans),
    )


def same_database(conn: psycopg.Connection) -> str:
    """libpq conninfo reaching ``conn``'s database as ``conn``'s user (password included, never logged)."""
    return make_conninfo(**conn.info.get_parameters(), password=conn.info.password)


#: The ADBC connections of the innermost :func:`bulk_session` (by conninfo), or None outside one.
_SESSION: ContextVar[dict[str, Any] | None] = ContextVar("autopilot_bulk_session", default=None)
#: ADBC connections kept for the life of this process (by conninfo) once :func:`hold_bulk_connections` is called.
_held: dict[str, Any] | None = None
#: A forked child's copies of its parent's connections: never used, never closed (closing one would end the
#: parent's session on the socket they share).
_inherited: list[Any] = []


def hold_bulk_connections() -> None:
    """Keep one ADBC connection per database for the life of this process, for processes that serve many
    steps (a Celery worker's pool, a backfill's run process): opening one costs ~50 ms of CPU (the driver
    loads the server's type catalog), more than reading an hour's window. A held connection that fails a
    read (its server restarted, a pooler closed it) is replaced and the read, which changes nothing, runs
    again once."""
    global _held
    if _held is None:
        _held = {}
        os.register_at_fork(after_in_child=_forget_held)


def _forget_held() -> None:
    if _held:
        _inherited.extend(_held.values())
        _held.clear()


@contextmanager
def bulk_session() -> Iterator[None]:
    """Within the block, :func:`read_bulk` opens one ADBC connection per database and reuses it.

    Opening one costs ~0.1 s (the driver loads the server's types), more than reading a small window: the
    alert engine reads up to three windows of each target per evaluation. The connections are autocommit
    (each read sees what is committed when it runs) and closed when the block ends.
    """
    if _SESSION.get() is not None:  # nested: the outer session keeps them
        yield
        return
    readers: dict[str, Any] = {}
    token = _SESSION.set(readers)
    try:
        yield
    finally:
        _SESSION.reset(token)
        for reader in readers.values():
            reader.close()


def read_bulk(
    conn: psycopg.Connection,
    query: sql.Composable | str,
    params: Sequence[Any] | Mapping[str, Any] | None,
    schema: Mapping[str, pl.DataType],
) -> pl.DataFrame:
    """Run ``query`` through ADBC (binary COPY → Arrow) and return a frame with ``schema``.

    ``conn`` names the database: the read opens its own connection with the same parameters (or reuses the
    :func:`bulk_session`'s), so it sees committed data only. Parameters are bound client-side by psycopg (the driver streams with COPY only
    for a query without bind parameters). Each Arrow batch is cast to ``schema`` as it arrives, so
    ``Categorical`` columns never hold a whole window as strings.
    """
    import adbc_driver_postgresql.dbapi as adbc  # here, not at the top: pyarrow costs 0.5 s to import

    statement = psycopg.ClientCursor(conn).mogrify(query, params)
    conninfo = same_database(conn)
    session = _SESSION.get()
    if session is None and _held is not None:
        parts = _fetch_held(conninfo, statement, schema)
    elif session is None:
        with adbc.connect(conninfo) as reader:
            parts = _fetch(reader, statement, schema)
    else:
        if conninfo not in session:
            session[conninfo] = adbc.connect(conninfo, autocommit=True)
        parts = _fetch(session[conninfo], statement, schema)
    if not parts:
        return pl.DataFrame(schema=schema)
    return pl.concat(parts, rechunk=False).select(list(schema))


def _fetch_held(conninfo: str, statement: str, schema: Mapping[str, pl.DataType]) -> list[pl.DataFrame]:
    import adbc_driver_postgresql.dbapi as adbc

    assert _held is not None
    reader = _held.get(conninfo)
    if reader is not None:
        try:
            return _fetch(reader, statement, schema)
        except adbc.Error:  # a dead connection; a bad query fails again below, on a new one
            del _held[conninfo]
            with suppress(adbc.Error):
                reader.close()
    _held[conninfo] = reader = adbc.connect(conninfo, autocommit=True)
    return _fetch(reader, statement, schema)


def _fetch(reader: Any, statement: str, schema: Mapping[str, pl.DataType]) -> list[pl.DataFrame]:
    with reader.cursor() as cur:
        cur.execute(statement)
        return [pl.from_arrow(batch).cast(dict(schema)) for batch in cur.fetch_record_batch()]  # type: ignore[misc]


def _csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """Datetimes as ISO-8601 with offset; everything else as polars writes it."""
    return frame.with_columns(
        pl.col(name).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        if dtype.time_zone  # type: ignore[attr-defined]
        else pl.col(name).dt.strftime("%Y-%m-%dT%H:%M:%S%.6f")
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime)
    )


def copy_frame(conn: psycopg.Connection, table: str, frame: pl.DataFrame) -> int:
    """Append ``frame`` to ``schema.table`` (columns by name) with COPY; returns rows written."""
    if frame.height == 0:
        return 0
    schema_name, table_name = table.split(".", 1)
    statement = sql.SQL("COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv, NULL '')").format(
        table=sql.Identifier(schema_name, table_name),
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns),
    )
    payload = _csv_ready(frame).write_csv(include_header=False, null_value="", quote_style="necessary")
    data = payload.encode()
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for start in range(0, len(data), _CHUNK):
            copy.write(data[start : start + _CHUNK])
    return frame.height


def serialize_writes(conn: psycopg.Connection, key: str) -> None:
    """Wait until no other transaction writes ``key`` (a table, or a table and a part of it), then hold it
    until this transaction ends.

    Two runs of one partition at once otherwise both delete the old rows and both insert: a keyed table fails
    the second with a unique violation, an unkeyed one keeps both copies. With the lock the second run waits,
    then deletes what the first wrote and writes its own. Call it inside the write's transaction.
    """
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"autopilot.write:{key}",))


def replace_window(
    conn: psycopg.Connection,
    table: str,
    time_column: str,
    start: datetime,
    end: datetime,
    frame: pl.DataFrame,
    where: Mapping[str, Any] | None = None,
) -> int:
    """Replace the rows of ``[start, end)`` with ``frame`` in one transaction (idempotent rewrite).

    ``where`` narrows the window to rows whose columns equal its values (``{"target": "shop_b"}``): those
    columns are added to ``frame`` and only that part of the table is locked and replaced.
    """
    schema_name, table_name = table.split(".", 1)
    where = dict(where or {})
    conditions = [sql.SQL("{col} >= %s AND {col} < %s").format(col=sql.Identifier(time_column))]
    conditions += [sql.SQL("{} = %s").format(sql.Identifier(name)) for name in where]
    if where:
        frame = frame.with_columns(pl.lit(value).alias(name) for name, value in where.items())
    with conn.transaction():
        serialize_writes(conn, ":".join([table, *(f"{k}={v}" for k, v in where.items())]))
        conn.execute(
            sql.SQL("DELETE FROM {table} WHERE {conditions}").format(
                table=sql.Identifier(schema_name, table_name), conditions=sql.SQL(" AND ").join(conditions)
            ),
            (start, end, *where.values()),
        )
        return copy_frame(conn, table, frame)
