"""Index usage at the database edge: foreign keys, indexes that must never be dropped, write rates, and the
catalog of indexes as each profiling run saw it (``automation.index_catalog``), which dates new indexes and
gives every index an observation period of our own."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from autopilot_pipeline.profiling.drops import Observation, TableWrites
from autopilot_pipeline.profiling.foreign_keys import ForeignKey
from autopilot_pipeline.profiling.index_selection import TableActivity
from autopilot_pipeline.profiling.store.statements import IGNORED_SCHEMAS, db_now

_FOREIGN_KEYS_SQL = """
SELECT n.nspname, c.relname, k.conname,
       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY AS u(attnum, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum ORDER BY u.i),
       pn.nspname, p.relname,
       ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY AS u(attnum, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum ORDER BY u.i),
       k.confdeltype::text, k.confupdtype::text
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class p ON p.oid = k.confrelid
JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE k.contype = 'f' AND c.relkind = 'r' AND NOT (n.nspname = ANY(%s)) AND n.nspname NOT LIKE 'pg\\_%%'
ORDER BY 1, 2, 3
"""


def read_foreign_keys(conn: psycopg.Connection) -> list[ForeignKey]:
    """Foreign keys of the application's tables (ours, in ``automation``/``analytics``, are set by
    migrations). A partitioned child's key is read on each partition (where the scans happen)."""
    rows = conn.execute(_FOREIGN_KEYS_SQL, (sorted(IGNORED_SCHEMAS),)).fetchall()
    return [
        ForeignKey(r[0], r[1], r[2], tuple(r[3]), r[4], r[5], tuple(r[6]), r[7], r[8])
        for r in rows
        if r[3] and r[6]
    ]


def protected_indexes(conn: psycopg.Connection) -> dict[str, str]:
    """``{schema.index: why}`` of indexes no drop advice may name, whatever their statistics say: backing
    any constraint (``conindid``), the replica identity, attached to a partitioned parent's index."""
    rows = conn.execute(
        """
        SELECT n.nspname || '.' || i.relname,
               CASE WHEN EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
                        THEN 'backs a constraint'
                    WHEN x.indisreplident THEN 'the replica identity'
                    ELSE 'attached to a partitioned index' END
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_namespace n ON n.oid = i.relnamespace
        WHERE EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
           OR x.indisreplident
           OR EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = x.indexrelid)
        """
    ).fetchall()
    return {r[0]: r[1] for r in rows}


@dataclass(frozen=True)
class StatisticsPeriod:
    """Since when the server's cumulative counters count: the last reset, else the server's start (a lower
    bound: counters survive a clean restart, not a crash)."""

    since: datetime
    days: float
    basis: str  # statistics_reset | server_start


def statistics_period(conn: psycopg.Connection) -> StatisticsPeriod:
    row = conn.execute(
        "SELECT coalesce(stats_reset, pg_postmaster_start_time()), stats_reset IS NOT NULL, "
        "extract(epoch FROM now() - coalesce(stats_reset, pg_postmaster_start_time())) / 86400 "
        "FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    assert row is not None
    return StatisticsPeriod(row[0], max(float(row[2]), 0.0), "statistics_reset" if row[1] else "server_start")


_ACTIVITY_SQL = """
SELECT n.nspname || '.' || c.relname, greatest(c.reltuples, 0)::float8, c.relpages::float8,
       coalesce(s.n_tup_ins, 0), coalesce(s.n_tup_upd, 0), coalesce(s.n_tup_hot_upd, 0), coalesce(s.n_tup_del, 0)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND (%(tables)s::text[] IS NULL OR n.nspname || '.' || c.relname = ANY(%(tables)s))
"""


def read_table_activity(
    conn: psycopg.Connection, period: StatisticsPeriod | None = None, tables: Iterable[str] | None = None
) -> dict[str, TableActivity]:
    """Rows, pages and cumulative write counters of every table (or of ``tables``, as ``schema.name``), over
    the counters' period: the one reader of ``pg_stat_user_tables`` for index, drop and foreign-key advice."""
    period = period or statistics_period(conn)
    wanted = None if tables is None else sorted(set(tables))
    rows = conn.execute(_ACTIVITY_SQL, {"tables": wanted}).fetchall()
    return {
        r[0]: TableActivity(float(r[1]), float(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6]), period.days)
        for r in rows
    }


def table_writes(conn: psycopg.Connection, period: StatisticsPeriod | None = None) -> dict[str, TableWrites]:
    """Per-day writes of every application table: the cumulative counters over their period, at the rate
    observed (the period is stated beside the advice, so a rate from a short one is read as such)."""
    period = period or statistics_period(conn)
    if period.days <= 0:
        return {}
    return {
        table: TableWrites.of(activity)
        for table, activity in read_table_activity(conn, period).items()
        if table.split(".", 1)[0] not in IGNORED_SCHEMAS
    }


# --------------------------------------------------------------------------------------------- the index catalog


@dataclass(frozen=True)
class CatalogIndex:
    schema: str
    name: str
    table: str  # schema.table
    oid: int
    definition: str
    size_bytes: int
    scans: int | None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass
class IndexObservation:
    """One run's look at the catalog: indexes new since the previous run, and every index's observation
    period of zero scans."""

    observed_at: datetime
    previous_at: datetime | None
    new: list[CatalogIndex] = field(default_factory=list)
    periods: dict[str, Observation] = field(default_factory=dict)


def _catalog_indexes(conn: psycopg.Connection) -> list[CatalogIndex]:
    rows = conn.execute(
        """
        SELECT n.nspname, i.relname, n.nspname || '.' || t.relname, i.oid::bigint, pg_get_indexdef(i.oid),
               pg_relation_size(i.oid), s.idx_scan
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = x.indexrelid
        WHERE i.relkind = 'i' AND t.relkind IN ('r', 'm') AND NOT (n.nspname = ANY(%s))
          AND n.nspname NOT LIKE 'pg\\_%%' AND x.indisvalid
        """,
        (sorted(IGNORED_SCHEMAS),),
    ).fetchall()
    return [CatalogIndex(*r) for r in rows]


def _stored(conn: psycopg.Connection) -> dict[tuple[str, str], tuple]:
    return {
        (r[0], r[1]): r[2:]
        for r in conn.execute(
            "SELECT schema_name, index_name, index_oid, idx_scan, first_seen_at, scans_zero_since, last_seen_at "
            "FROM automation.index_catalog"
        ).fetchall()
    }


def _advance(old: tuple | None, ix: CatalogIndex, now: datetime) -> tuple[datetime, datetime | None, bool]:
    """(first seen, zero scans since, new) of ``ix`` given its stored row."""
    if old is None or old[0] != ix.oid:
        return now, (now if ix.scans == 0 else None), True
    _, old_scans, first_seen, zero_since, _ = old
    if ix.scans != 0:
        zero_since = None
    elif old_scans != 0 or zero_since is None:
        zero_since = now  # the counter went back to 0 (a reset) or was never 0 before
    return first_seen, zero_since, False


def observation_periods(
    conn: psycopg.Connection, period: StatisticsPeriod | None = None
) -> dict[str, Observation]:
    """Every unscanned index's observation period as of now, from the stored catalog (nothing written)."""
    period = period or statistics_period(conn)
    now = db_now(conn)
    stored = _stored(conn)
    first_look = min((v[2] for v in stored.values()), default=None)
    out = {}
    for ix in _catalog_indexes(conn):
        if ix.scans == 0:
            first_seen, zero_since, _ = _advance(stored.get((ix.schema, ix.name)), ix, now)
            out[ix.qualified] = _period_of(now, first_seen, zero_since, first_look, period)
    return out


def observe_indexes(
    conn: psycopg.Connection, period: StatisticsPeriod | None = None, at: datetime | None = None
) -> IndexObservation:
    """Compare the catalog with the previous run's look, store this one, and say what is new.

    Nothing is "new" at the very first look (it is the baseline). The period of an unscanned index is the
    longer of the server's (its counters since the reset) and ours (seen at 0 scans at every run since),
    except for an index that appeared after our first look: only ours, as the index is younger than the
    server's counters. ``at`` is the moment of the look (the run's pg_stat_statements snapshot, so that
    statistics windows and index appearances share their boundaries)."""
    period = period or statistics_period(conn)
    now = at or db_now(conn)
    current = _catalog_indexes(conn)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('automation.index_catalog'))")
        stored = _stored(conn)
        first_look = min((v[2] for v in stored.values()), default=None)
        previous_at = max((v[4] for v in stored.values()), default=None)
        result = IndexObservation(now, previous_at)
        rows = []
        for ix in current:
            first_seen, zero_since, new = _advance(stored.get((ix.schema, ix.name)), ix, now)
            if new and stored:
                result.new.append(ix)
            if ix.scans == 0:
                result.periods[ix.qualified] = _period_of(now, first_seen, zero_since, first_look, period)
            rows.append(
                (
                    ix.schema,
                    ix.name,
                    ix.table,
                    ix.oid,
                    ix.definition,
                    ix.size_bytes,
                    ix.scans,
                    first_seen,
                    now,
                    zero_since,
                )
            )
        # the look replaces the previous one: indexes gone since are forgotten
        conn.execute("DELETE FROM automation.index_catalog")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO automation.index_catalog (schema_name, index_name, table_name, index_oid, definition, "
                "size_bytes, idx_scan, first_seen_at, last_seen_at, scans_zero_since) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
    return result


def _period_of(
    now: datetime,
    first_seen: datetime,
    zero_since: datetime | None,
    first_look: datetime | None,
    server: StatisticsPeriod,
) -> Observation:
    ours = None
    if zero_since is not None:
        basis = (
            "first_snapshot" if first_look is not None and first_seen <= first_look else "index_first_seen"
        )
        ours = Observation((now - zero_since).total_seconds() / 86400.0, zero_since, basis)
    younger = first_look is not None and first_seen > first_look
    if younger:
        return ours or Observation(0.0, now, "index_first_seen")
    theirs = Observation(server.days, server.since, server.basis)
    return theirs if ours is None or theirs.days >= ours.days else ours
