"""Foreign keys without an index on the referencing side. Pure: the store hands the catalog and statistics in.

Deleting a parent row, or changing its key, makes Postgres look for referencing rows in the child (the RI
trigger's ``SELECT 1 FROM ONLY child WHERE fk = $1 FOR KEY SHARE``; with ON DELETE CASCADE / SET NULL a
``DELETE``/``UPDATE`` of the child by the same predicate). Without an index whose leading columns are the
foreign-key columns that is one sequential scan of the child per parent row, and EXPLAIN of the DELETE does
not show it: only the statement's measured time (pg_stat_statements, EXPLAIN ANALYZE's trigger time) does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from autopilot_pipeline.profiling.findings import Recommendation
from autopilot_pipeline.profiling.index_selection import btree_size
from autopilot_pipeline.profiling.indexes import ExistingIndex, IndexCandidate, index_name
from autopilot_pipeline.profiling.report import plural
from autopilot_pipeline.profiling.settings import ProfilingSettings

#: pg_constraint.confdeltype / confupdtype
ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
#: Actions that write the child rows (a hidden DELETE or UPDATE of the child per parent row).
WRITING_ACTIONS = frozenset({"c", "n", "d"})


@dataclass(frozen=True)
class ForeignKey:
    """One foreign-key constraint, child (referencing) to parent (referenced) columns in key order."""

    schema: str
    table: str
    name: str
    columns: tuple[str, ...]
    parent_schema: str
    parent_table: str
    parent_columns: tuple[str, ...]
    on_delete: str = "a"
    on_update: str = "a"

    @property
    def child(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def parent(self) -> str:
        return f"{self.parent_schema}.{self.parent_table}"


@dataclass(frozen=True)
class ServedQuery:
    """A statement an FK index would speed up: a DELETE/UPDATE of the parent (its RI check or cascade) or a
    join child -> parent; calls and mean time from the analysis window, plan cost of the statement itself."""

    fingerprint: str
    kind: str  # parent_delete | parent_update | join
    calls: int
    mean_ms: float
    query: str = ""
    plan_cost: float | None = None
    rows_per_call: float = 1.0  # parent rows deleted/updated per call: one RI check each


@dataclass(frozen=True)
class ForeignKeyEvidence:
    """What the store measured about one foreign key."""

    fk: ForeignKey
    child_rows: float
    parent_deletes: int = 0
    parent_updates: int = 0
    stats_days: float | None = None  # the period the delete/update counters cover
    child_writes_per_day: float | None = None  # index entries: inserts + non-HOT updates
    key_width: float = 8.0  # bytes of the key columns (pg_stats.avg_width)
    statements: tuple[ServedQuery, ...] = ()
    check_cost: float | None = None  # plan cost of the RI check query now (a sequential scan)
    indexed_cost: float | None = None  # ... with the index (HypoPG, or the heuristic below)
    verification: str = "heuristic"  # hypopg | heuristic
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def join_calls(self) -> int:
        return sum(s.calls for s in self.statements if s.kind == "join")


_NOT_NULL = re.compile(r'^\(*\s*("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)\s+IS\s+NOT\s+NULL\s*\)*$', re.I)


def _implied_predicate(predicate: str | None, columns: Iterable[str]) -> bool:
    """True when a partial index's predicate is implied by ``fk = $1`` on every column: only
    ``col IS NOT NULL`` terms over the key's columns (the planner proves those from a strict equality)."""
    if predicate is None:
        return True
    wanted = set(columns)
    for term in re.split(r"\s+AND\s+", predicate.strip(), flags=re.I):
        match = _NOT_NULL.match(term.strip())
        if match is None:
            return False
        name = match.group(1)
        name = name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()
        if name not in wanted:
            return False
    return True


def covering_fk_indexes(fk: ForeignKey, indexes: Iterable[ExistingIndex]) -> list[ExistingIndex]:
    """Valid indexes on the child whose leading key columns are the FK's columns, in any order (the check
    is an equality on each), with no predicate beyond ``IS NOT NULL`` on them; a hash index on the column
    serves a one-column key."""
    n = len(fk.columns)
    out = []
    for ix in indexes:
        if ix.qualified_table != fk.child or not ix.valid or not _implied_predicate(ix.predicate, fk.columns):
            continue
        lead = ix.columns[:n]
        if len(lead) < n or any(c is None for c in lead) or set(lead) != set(fk.columns):
            continue
        if ix.method == "btree" or (ix.method == "hash" and n == 1):
            out.append(ix)
    return out


def covering_fk_index(fk: ForeignKey, indexes: Iterable[ExistingIndex]) -> ExistingIndex | None:
    """The index that serves the FK's check, or None. Of several, the one drop advice keeps: the widest
    (a narrower one is its prefix), then one enforcing uniqueness, the most scanned, the first name."""
    found = covering_fk_indexes(fk, indexes)
    if not found:
        return None
    return min(found, key=lambda ix: (-len(ix.columns), not ix.unique, -(ix.scans or 0), ix.name))


def _check_saving(ev: ForeignKeyEvidence) -> float | None:
    """Share of one RI check's (or cascade's) cost the index removes: its sequential scan replaced by an
    index probe. The statement's own work is weighed in by the caller."""
    if ev.check_cost is None or ev.indexed_cost is None or ev.check_cost <= 0:
        return None
    return max(0.0, ev.check_cost - ev.indexed_cost) / ev.check_cost


def foreign_key_findings(
    evidence: Sequence[ForeignKeyEvidence],
    indexes: Sequence[ExistingIndex],
    settings: ProfilingSettings,
    advised: Iterable[IndexCandidate] = (),
) -> list[Recommendation]:
    """An index on the referencing columns of each foreign key that needs one.

    Needed when the child is large (``min_table_rows``) and no index covers the key, and the parent is
    deleted from or updated (pg_stat_user_tables counters), or the key cascades / sets null on delete (a
    write of the child per parent row), or queries join child -> parent at least ``fk_join_min_calls`` times
    in the window. Skipped when other advice (``advised``) already proposes an index on the key's columns.
    """
    advised = list(advised)
    out: dict[str, Recommendation] = {}
    for ev in evidence:
        fk = ev.fk
        if covering_fk_index(fk, indexes) is not None or ev.child_rows < settings.min_table_rows:
            continue
        if any(a.table == fk.child and set(a.columns[: len(fk.columns)]) == set(fk.columns) for a in advised):
            continue
        reasons = []
        if ev.parent_deletes > 0:
            reasons.append(f"{ev.parent_deletes:,} parent rows deleted{_period(ev.stats_days)}")
        if ev.fk.on_delete in WRITING_ACTIONS:
            reasons.append(f"ON DELETE {ACTIONS[fk.on_delete]} writes the child per deleted parent row")
        if ev.parent_updates > 0 and (fk.on_update != "a" or ev.parent_deletes == 0):
            reasons.append(f"{ev.parent_updates:,} parent rows updated{_period(ev.stats_days)}")
        if ev.join_calls >= settings.fk_join_min_calls:
            reasons.append(f"{ev.join_calls:,} joins {fk.table} -> {fk.parent_table} in the window")
        if not reasons:
            continue
        candidate = IndexCandidate(table=fk.child, columns=fk.columns)
        share = _check_saving(ev)
        dml = [s for s in ev.statements if s.kind in ("parent_delete", "parent_update")]
        saved = None
        pct = None
        if share is not None and ev.check_cost is not None and dml:
            saved = spent = 0.0
            for s in dml:
                # the statement's own work stays; each of its RI scans (check_cost) becomes an index probe
                checks = max(s.rows_per_call, 1.0) * ev.check_cost
                saved += s.calls * s.mean_ms * share * checks / ((s.plan_cost or 0.0) + checks)
                spent += s.calls * s.mean_ms
            pct = round(100.0 * saved / spent, 1) if spent > 0 else None
        deletes_weigh = ev.parent_deletes > 0 or fk.on_delete in WRITING_ACTIONS
        if saved is not None and saved >= settings.high_saved_ms:
            priority = "high"
        elif deletes_weigh or ev.join_calls >= settings.fk_join_min_calls:
            priority = "medium"
        else:
            priority = "low"
        size = btree_size(ev.child_rows, [ev.key_width])
        cols = ", ".join(fk.columns)
        why = (
            f"foreign key {fk.name} ({fk.child} ({cols}) -> {fk.parent}) has no index on the referencing "
            f"side: each deleted or re-keyed parent row scans {fk.table} ({ev.child_rows:,.0f} rows) "
            "sequentially in a hidden RI trigger that EXPLAIN of the DELETE does not show; "
            + "; ".join(reasons)
        )
        details = {
            "why": why,
            "index_type": "btree (equality on every key column: the RI check's lookup)",
            "queries": [
                {
                    "fingerprint": s.fingerprint,
                    "kind": s.kind,
                    "calls": s.calls,
                    "mean_ms": round(s.mean_ms, 3),
                    "query": s.query[:300],
                }
                for s in ev.statements
            ]
            + [
                {
                    "kind": "ri_check",
                    "query": f"SELECT 1 FROM ONLY {fk.child} WHERE "
                    + " AND ".join(f"{c} = ${i}" for i, c in enumerate(fk.columns, start=1))
                    + " FOR KEY SHARE",
                }
            ],
            "predicted_saving_pct": pct,
            "estimated_size_bytes": size,
            "index_writes_per_day": None
            if ev.child_writes_per_day is None
            else round(ev.child_writes_per_day, 1),
            "write_note": f"every insert into {fk.table} and every update of its key adds one index entry",
            "cost_source": ev.verification,
            "notes": list(ev.notes),
        }
        impact = (
            f"Estimated {saved / 1000:.1f} s less statement time per analysis window"
            if saved is not None
            else f"Parent deletes stop scanning {fk.table}"
        ) + f"; index ~{_mb(size)}"
        out[candidate.key] = Recommendation(
            key=candidate.key,
            type="missing_index",
            priority=priority,
            table_name=fk.child,
            description=f"Index {fk.child} ({cols}) for foreign key {fk.name} -> {fk.parent}: "
            + "; ".join(reasons)
            + (f" ({plural(len(dml), 'statement')} served)" if dml else ""),
            action_sql=candidate.definition() + ";",
            impact=impact,
            estimated_improvement_pct=pct,
            metadata={
                "verification": "foreign_key",
                "reason": "foreign_key",
                "foreign_key": fk.name,
                "parent_table": fk.parent,
                "index_columns": list(fk.columns),
                "index_name": index_name(candidate),
                "fingerprints": sorted({s.fingerprint for s in dml}),
                "calls": sum(s.calls for s in dml),
                "estimated_saved_ms": None if saved is None else round(saved, 1),
                "plan_cost_before": ev.check_cost,
                "plan_cost_after": ev.indexed_cost,
                **details,
            },
        )
    return list(out.values())


def fk_protected_indexes(fks: Iterable[ForeignKey], indexes: Sequence[ExistingIndex]) -> dict[str, str]:
    """``{schema.index: constraint}`` of the index serving each foreign key's check: never dropped (its scans
    come when a parent row is deleted, which may be rare). One per key: other covering indexes may go as
    duplicates or unused, this one stays and serves the check."""
    out: dict[str, str] = {}
    for fk in fks:
        ix = covering_fk_index(fk, indexes)
        if ix is not None:
            out.setdefault(f"{ix.schema}.{ix.name}", fk.name)
    return out


def _period(days: float | None) -> str:
    return "" if days is None else f" in {days:.1f} days"


def _mb(n: int) -> str:
    return f"{n / 1048576:.1f} MB"


def rows_per_key(child_rows: float, parent_rows: float) -> float:
    """Average children of one parent: what an index probe of the RI check reads."""
    return max(child_rows, 0.0) / max(parent_rows, 1.0)


def heuristic_indexed_cost(child_rows: float, parent_rows: float) -> float:
    """Without HypoPG, the RI check's cost through an index: a B-tree descent plus one random page per
    matching row (the planner's own order of magnitude)."""
    return 4.0 + 4.0 * rows_per_key(child_rows, parent_rows)
