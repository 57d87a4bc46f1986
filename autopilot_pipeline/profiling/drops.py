"""Indexes to drop: never scanned over a stated observation period, exact duplicates and prefix-redundant
ones, each with its size and the write cost it adds. Pure: the store hands the catalog and statistics in.

What is never proposed: primary keys, unique and exclusion indexes, any index backing a constraint
(``pg_constraint.conindid``), the replica identity, an index attached to a partitioned parent's index, and an
index that serves a foreign key's check (its scans come when a parent row is deleted, which may be rare).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from autopilot_pipeline.profiling.findings import Recommendation, human_size
from autopilot_pipeline.profiling.index_selection import TableActivity
from autopilot_pipeline.profiling.indexes import ExistingIndex
from autopilot_pipeline.profiling.settings import ProfilingSettings


@dataclass(frozen=True)
class Observation:
    """How long an index's usage counter has been watched, and since what (said in the advice)."""

    days: float
    since: datetime | None
    basis: str  # statistics_reset | server_start | first_snapshot | index_first_seen

    def describe(self) -> str:
        when = f" on {self.since:%Y-%m-%d %H:%M} UTC" if self.since is not None else ""
        what = {
            "statistics_reset": "since the statistics reset",
            "server_start": "since the server started (statistics never reset)",
            "first_snapshot": "since Autopilot's first catalog snapshot",
            "index_first_seen": "since Autopilot first saw the index",
        }.get(self.basis, f"since {self.basis}")
        return f"{self.days:.1f} days ({what}{when})"


@dataclass(frozen=True)
class TableWrites:
    """Row writes on a table per day (from the statistics counters over their period). Inserts and non-HOT
    updates add an entry to every index; deletes leave work for vacuum in every index."""

    inserts_per_day: float
    updates_per_day: float  # non-HOT: HOT updates touch no index
    deletes_per_day: float
    period_days: float | None = None  # the counters' period the rates come from

    @classmethod
    def of(cls, activity: TableActivity) -> TableWrites:
        """The per-day rates of a table's counters over their period (which must be positive)."""
        days = activity.stats_days
        non_hot = max(activity.updates - activity.hot_updates, 0)
        return cls(activity.inserts / days, non_hot / days, activity.deletes / days, days)

    @property
    def index_writes_per_day(self) -> float:
        return self.inserts_per_day + self.updates_per_day

    def describe(self, table: str) -> str:
        """The write cost in words: per day over a day or more of counters, else the count itself."""
        if self.period_days is not None and self.period_days < 1:
            count = self.index_writes_per_day * self.period_days
            return f"{count:,.0f} index entries written on {table} in {24 * self.period_days:.1f} h of statistics"
        return f"{self.index_writes_per_day:,.0f} index entries written per day on {table}"

    def as_dict(self) -> dict[str, float | None]:
        return {
            "measured_over_days": None if self.period_days is None else round(self.period_days, 5),
            "table_writes_per_day": round(
                self.inserts_per_day + self.updates_per_day + self.deletes_per_day, 1
            ),
            "index_entries_per_day": round(self.index_writes_per_day, 1),
            "inserts_per_day": round(self.inserts_per_day, 1),
            "non_hot_updates_per_day": round(self.updates_per_day, 1),
            "deletes_per_day": round(self.deletes_per_day, 1),
        }


def _qualified(ix: ExistingIndex) -> str:
    return f"{ix.schema}.{ix.name}"


def _write_cost(ix: ExistingIndex, writes: Mapping[str, TableWrites]) -> tuple[dict | None, str]:
    w = writes.get(ix.qualified_table)
    if w is None:
        return None, ""
    return w.as_dict(), f"; {w.describe(ix.table)}"


def unused_index_findings(
    indexes: Iterable[ExistingIndex],
    stats_age_days: float | None,
    settings: ProfilingSettings,
    exclude: Iterable[str] = (),
    *,
    observed: Mapping[str, Observation] | None = None,
    protected: Mapping[str, str] | None = None,
    writes: Mapping[str, TableWrites] | None = None,
) -> list[Recommendation]:
    """Indexes with no scan over their observation period, and invalid ones (left by a failed concurrent
    build: never used, still written).

    ``observed`` maps ``schema.index`` to its period; indexes not in it have ``stats_age_days`` (since the
    statistics reset). No proposal when the period is shorter than ``unused_min_stats_days``: a weekly or
    monthly job may be the index's only user. ``protected`` maps ``schema.index`` to why it must stay.
    """
    skip = set(exclude)
    protected = protected or {}
    observed = observed or {}
    writes = writes or {}
    out = []
    for index in indexes:
        name = _qualified(index)
        if index.qualified_name in skip or name in skip:
            continue
        cost, cost_text = _write_cost(index, writes)
        if not index.valid:
            out.append(
                Recommendation(
                    key=f"unused_index:{name}",
                    type="unused_index",
                    priority="high",
                    table_name=index.qualified_table,
                    description=f"Invalid index {name} (a failed build): it slows writes and is never used",
                    action_sql=f"DROP INDEX CONCURRENTLY IF EXISTS {index.qualified_name};",
                    impact=f"Reclaims {human_size(index.size_bytes)} and write overhead",
                    metadata={
                        "index": index.name,
                        "invalid": True,
                        "size_bytes": index.size_bytes,
                        "details": {
                            "why": "an invalid index is maintained on every write but never read",
                            "size_bytes": index.size_bytes,
                            "write_overhead": cost,
                        },
                    },
                )
            )
            continue
        if index.scans != 0 or index.primary or index.unique or index.backs_constraint or name in protected:
            continue
        period = observed.get(name)
        days = period.days if period is not None else stats_age_days
        if days is None or days < settings.unused_min_stats_days:
            continue
        span = period.describe() if period is not None else f"{days:.1f} days (since the statistics reset)"
        idle = cost is not None and writes[index.qualified_table].index_writes_per_day == 0
        out.append(
            Recommendation(
                key=f"unused_index:{name}",
                type="unused_index",
                priority="low" if idle else "medium",
                table_name=index.qualified_table,
                description=f"Index {name} ({human_size(index.size_bytes)}) has not been scanned in {span}"
                f"{cost_text} (check replicas before dropping)",
                action_sql=f"DROP INDEX CONCURRENTLY IF EXISTS {index.qualified_name};",
                impact=f"Reclaims {human_size(index.size_bytes)}; cheaper writes",
                metadata={
                    "index": index.name,
                    "size_bytes": index.size_bytes,
                    "stats_age_days": round(days, 2),
                    "details": {
                        "why": f"0 scans in {span}; it enforces nothing and serves no foreign key",
                        "observation_days": round(days, 2),
                        "observed_since": None
                        if period is None or period.since is None
                        else period.since.isoformat(),
                        "observation_basis": "statistics_reset" if period is None else period.basis,
                        "size_bytes": index.size_bytes,
                        "write_overhead": cost,
                    },
                },
            )
        )
    return out


def _signature(ix: ExistingIndex) -> list[tuple]:
    n = len(ix.columns)
    pad = ("",) * n
    return list(zip(ix.columns, ix.opclasses or pad, ix.collations or pad, ix.options or pad, strict=False))


def duplicate_index_findings(
    indexes: Sequence[ExistingIndex],
    *,
    protected: Mapping[str, str] | None = None,
    writes: Mapping[str, TableWrites] | None = None,
) -> list[Recommendation]:
    """PgHero's rule: an index whose key columns (with operator classes, collations and ordering) are a
    leading prefix of another's on the same table, with the same method, predicate and expressions, is
    redundant — unless it enforces uniqueness or a constraint, or is otherwise ``protected``. Of two identical
    indexes the one enforcing nothing goes. The wider index serves every query and foreign-key check the
    narrower one did (same leading columns)."""
    protected = protected or {}
    writes = writes or {}
    out: dict[str, Recommendation] = {}
    for a in indexes:
        if not a.valid or a.primary or _qualified(a) in protected:
            continue
        for b in indexes:
            if (
                a is b
                or not b.valid
                or (a.qualified_table, a.method, a.predicate, a.expressions)
                != (b.qualified_table, b.method, b.predicate, b.expressions)
            ):
                continue
            sa, sb = _signature(a), _signature(b)
            same = sa == sb
            prefix = len(sa) < len(sb) and sb[: len(sa)] == sa and a.method == "btree"
            if not (same or prefix):
                continue
            if a.backs_constraint:
                continue  # dropping it would mean dropping the constraint
            if a.unique and not (same and b.unique):
                continue  # the only index enforcing this uniqueness
            if same:
                # of two identical indexes keep the one that enforces more, then the one the planner uses
                # more, then the first name
                rank_a = (a.primary, a.backs_constraint, a.unique, a.scans or 0)
                rank_b = (b.primary, b.backs_constraint, b.unique, b.scans or 0)
                if not (rank_b > rank_a or (rank_b == rank_a and b.name < a.name)):
                    continue
            key = f"duplicate_index:{_qualified(a)}"
            cost, cost_text = _write_cost(a, writes)
            cols_a = ", ".join(c or "expr" for c in a.columns)
            cols_b = ", ".join(c or "expr" for c in b.columns)
            relation = "identical to" if same else "a leading prefix of"
            out[key] = Recommendation(
                key=key,
                type="duplicate_index",
                priority="medium",
                table_name=a.qualified_table,
                description=f"Index {_qualified(a)} ({cols_a}) is {relation} {_qualified(b)} ({cols_b}): "
                f"drop it ({human_size(a.size_bytes)}{cost_text})",
                action_sql=f"DROP INDEX CONCURRENTLY IF EXISTS {a.qualified_name};",
                impact=f"Reclaims {human_size(a.size_bytes)}; cheaper writes; queries use {b.name}",
                metadata={
                    "index": a.name,
                    "covered_by": b.name,
                    "identical": same,
                    "size_bytes": a.size_bytes,
                    "details": {
                        "why": f"{relation} {b.name} with the same method, predicate and expressions: every "
                        f"query (and foreign-key check) it serves, {b.name} serves",
                        "size_bytes": a.size_bytes,
                        "scans": a.scans,
                        "write_overhead": cost,
                    },
                },
            )
    return list(out.values())


def drop_findings(
    indexes: Sequence[ExistingIndex],
    stats_age_days: float | None,
    settings: ProfilingSettings,
    *,
    exclude: Iterable[str] = (),
    observed: Mapping[str, Observation] | None = None,
    protected: Mapping[str, str] | None = None,
    writes: Mapping[str, TableWrites] | None = None,
) -> list[Recommendation]:
    """Duplicates first; an index flagged as a duplicate is not also reported as unused."""
    duplicates = duplicate_index_findings(indexes, protected=protected, writes=writes)
    flagged = {r.key.split(":", 1)[1] for r in duplicates}
    unused = unused_index_findings(
        indexes,
        stats_age_days,
        settings,
        exclude=[*exclude, *flagged],
        observed=observed,
        protected=protected,
        writes=writes,
    )
    return [*duplicates, *unused]
