"""Which kind of index, and which set of indexes: partial-index predicates from logged literals and column
statistics, BRIN eligibility, size and write-cost estimates, and the weighted set cover that serves every
slow query with the least index. Pure: the store hands in statistics and planner costs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from autopilot_pipeline.profiling.expressions import literal
from autopilot_pipeline.profiling.indexes import IndexCandidate, is_expression, quote_ident
from autopilot_pipeline.profiling.settings import ProfilingSettings

# --------------------------------------------------------------------------------------------- statistics

PAGE = 8192
_BTREE_FILL = 0.9  # leaf pages are built 90 % full
TUPLE_OVERHEAD = 8 + 4  # index tuple header (TID + info) + its line pointer
_BRIN_PAGES_PER_RANGE = 128
_NEGLIGIBLE = 0.005  # a plan-cost difference under 0.5 % of the query's unindexed cost does not matter


@dataclass(frozen=True)
class ColumnStats:
    """One column's ``pg_stats`` row: what the planner knows of its values."""

    null_frac: float = 0.0
    n_distinct: float = 0.0  # as pg_stats: < 0 is a fraction of the rows
    most_common: Mapping[str, float] = field(default_factory=dict)  # value (as text) -> frequency
    correlation: float | None = None
    avg_width: int = 8


@dataclass(frozen=True)
class TableActivity:
    """A table's size and write counters (pg_class, pg_stat_user_tables) over ``stats_days`` of statistics."""

    rows: float
    pages: float
    inserts: int = 0
    updates: int = 0
    hot_updates: int = 0
    deletes: int = 0
    stats_days: float = 1.0

    @property
    def index_writes_per_day(self) -> float:
        """Index entries a new B-tree would have to write per day: every insert and every non-HOT update."""
        writes = self.inserts + max(self.updates - self.hot_updates, 0)
        return writes / max(self.stats_days, 1.0)  # under a day of statistics: the count so far

    @property
    def append_only(self) -> bool:
        """Rows are added, rarely changed or removed: updates + deletes at most 5 % of inserts."""
        return self.inserts > 0 and (self.updates + self.deletes) <= 0.05 * self.inserts


def constant_text(value: str) -> str:
    """The value of a SQL constant as ``pg_stats`` prints it (``'it''s'`` -> ``it's``; numbers as written)."""
    if len(value) >= 2 and value.startswith("'") and value.endswith("'"):
        return value[1:-1].replace("''", "'")
    return value


def value_fraction(stats: ColumnStats, value: str, rows: float) -> float | None:
    """Estimated fraction of rows where the column equals ``value`` (SQL text; ``NULL`` for IS NULL), as the
    planner reasons: its frequency if it is a most common value, else an equal share of what the MCVs and
    NULLs leave over the remaining distinct values (a bound: no value outside the list is more common than
    the rarest listed one). None when the statistics say nothing (never analyzed)."""
    if value == "NULL":
        return stats.null_frac
    text = constant_text(value)
    text = {"true": "t", "false": "f"}.get(text.lower(), text)  # booleans as pg_stats prints them
    if text in stats.most_common:
        return stats.most_common[text]
    distinct = stats.n_distinct if stats.n_distinct >= 0 else -stats.n_distinct * max(rows, 1.0)
    if distinct <= 0:
        return None
    others = distinct - len(stats.most_common)
    remaining = max(1.0 - stats.null_frac - sum(stats.most_common.values()), 0.0)
    if others < 1:
        return None  # every value is listed, yet not this one as written: unknown (say nothing)
    share = remaining / others
    if stats.most_common:
        share = min(share, min(stats.most_common.values()))
    return share


def partial_predicate(
    column: str,
    values_seen: Sequence[str],
    stats: ColumnStats | None,
    rows: float,
    settings: ProfilingSettings,
) -> tuple[str, float] | None:
    """``(predicate, fraction)`` of a partial index for ``column``, or None.

    Only when every logged call of the query shape compared the column with the same constant (so the
    partial index serves every query of that shape, not just some) and that value is rare: at most
    ``partial_max_fraction`` of the rows, where the partial index is that much smaller than the full one."""
    distinct = set(values_seen)
    if len(distinct) != 1 or stats is None or "?" in distinct:
        return None
    (value,) = distinct
    fraction = value_fraction(stats, value, rows)
    if fraction is None or fraction > settings.partial_max_fraction:
        return None
    name = quote_ident(column)
    predicate = f"({name} IS NULL)" if value == "NULL" else f"({name} = {_as_literal(value)})"
    return predicate, fraction


def _as_literal(value: str) -> str:
    return value if not value.startswith("'") else literal(constant_text(value))


def brin_eligible(
    activity: TableActivity | None, stats: ColumnStats | None, settings: ProfilingSettings
) -> bool:
    """A BRIN index fits a large, append-only table whose column follows the physical row order (|correlation|
    near 1): each 128-page range then holds a narrow band of values and a range query skips the rest."""
    return (
        activity is not None
        and stats is not None
        and stats.correlation is not None
        and activity.rows >= settings.brin_min_rows
        and abs(stats.correlation) >= settings.brin_min_correlation
        and (activity.append_only or activity.updates + activity.deletes == 0)
    )


def _align(n: float) -> float:
    return 8 * math.ceil(n / 8)


def btree_size(rows: float, key_widths: Sequence[float], fraction: float = 1.0) -> int:
    """Bytes of a B-tree over ``rows × fraction`` entries of the given key widths (leaf pages 90 % full, one
    inner page per ~300 leaves, a metapage); deduplication of repeated keys (PG 13+) can make it smaller."""
    entries = max(rows * fraction, 0.0)
    per_page = max(int(PAGE * _BTREE_FILL // (TUPLE_OVERHEAD + _align(sum(key_widths) or 8))), 1)
    leaves = max(math.ceil(entries / per_page), 1)
    return int((1 + leaves + math.ceil(leaves / 300)) * PAGE)


def brin_size(table_pages: float, width: int) -> int:
    """Bytes of a BRIN index: one min/max summary per 128 heap pages, the range map, a metapage."""
    ranges = max(math.ceil(table_pages / _BRIN_PAGES_PER_RANGE), 1)
    per_tuple = TUPLE_OVERHEAD + 2 * _align(width) + 8
    summary_pages = math.ceil(ranges * per_tuple / PAGE)
    revmap_pages = math.ceil(ranges / (PAGE // 6))
    return int((1 + revmap_pages + summary_pages) * PAGE)


def estimated_size(
    candidate: IndexCandidate,
    activity: TableActivity | None,
    widths: Mapping[str, int],
    fraction: float = 1.0,
) -> int | None:
    """Bytes the candidate would take, from the table's row and page counts and the columns' average widths
    (an expression counts as wide as its widest column)."""
    if activity is None:
        return None
    key = [_item_width(item, widths) for item in candidate.columns]
    if candidate.method == "brin":
        return brin_size(activity.pages, max(key, default=8))
    return btree_size(activity.rows, key, fraction if candidate.predicate else 1.0)


def _item_width(item: str, widths: Mapping[str, int]) -> int:
    if not is_expression(item):
        return int(widths.get(item, 8))
    inside = [w for name, w in widths.items() if name in item]
    return int(max(inside, default=8))


def write_overhead(candidate: IndexCandidate, activity: TableActivity | None, fraction: float = 1.0) -> float:
    """Index entries written per day to keep the candidate up to date: every insert and non-HOT update for a
    B-tree (the share matching the predicate for a partial one); a BRIN index only summarizes page ranges,
    about one entry per 128 pages filled."""
    if activity is None:
        return 0.0
    per_day = activity.index_writes_per_day
    if candidate.method == "brin":
        rows_per_page = activity.rows / max(activity.pages, 1.0)
        return per_day / max(rows_per_page * _BRIN_PAGES_PER_RANGE, 1.0)
    return per_day * (fraction if candidate.predicate else 1.0)


# --------------------------------------------------------------------------------------------- the set


@dataclass(frozen=True)
class Choice:
    """The index chosen for one query, with the planner's cost of the query with it."""

    fingerprint: str
    candidate: IndexCandidate
    cost: float


def index_weight(size_bytes: float, writes_per_day: float, entry_bytes: float) -> float:
    """What an index costs, in bytes: its size plus one day of index entries written for it."""
    return float(size_bytes) + float(writes_per_day) * float(entry_bytes)


def select_indexes(
    options: Mapping[str, Mapping[IndexCandidate, float]],
    base: Mapping[str, float],
    weight: Mapping[IndexCandidate, float],
    settings: ProfilingSettings,
) -> dict[str, Choice]:
    """Serve every query that some candidate helps with the least total index weight (greedy weighted set
    cover), then fold any chosen index that is a leading prefix of another chosen one into it.

    ``options[fp][c]`` is the planner's cost of query ``fp`` with hypothetical index ``c`` (only when the plan
    uses it), ``base[fp]`` its cost without. A candidate *serves* a query when it saves at least the kind's
    threshold (``min_saving_pct``; ``expression_min_saving_pct`` for an expression index, which the planner
    costs without statistics) and its plan costs at most ``share_max_cost_ratio`` times the plan with the
    query's best candidate (or the difference is under 0.5 % of the base cost) — so a small or shared index
    never displaces a much better one. Greedy rule: take the candidate with the least
    weight per still-unserved query it serves; ties go to the one serving more queries, then to the cheaper
    plans. Each query then uses the cheapest chosen index that serves it. The greedy cover is within a
    logarithmic factor of the optimum, and the queries of one table are few, so it is close in practice."""
    serves: dict[IndexCandidate, set[str]] = {}
    for fp, costs in options.items():
        b = base.get(fp, 0.0)
        if b < settings.min_cost or not costs:
            continue
        good = {c: cost for c, cost in costs.items() if _saving(b, cost) >= _threshold(c, settings)}
        if not good:
            continue
        best = min(good.values())
        for c, cost in good.items():
            if cost <= best * settings.share_max_cost_ratio + 1e-9 or cost - best <= _NEGLIGIBLE * b:
                serves.setdefault(c, set()).add(fp)
    uncovered = set().union(*serves.values()) if serves else set()
    chosen: list[IndexCandidate] = []
    while uncovered:
        best_c = min(
            (c for c in serves if serves[c] & uncovered),
            key=lambda c: (
                weight.get(c, 0.0) / len(serves[c] & uncovered),
                -len(serves[c] & uncovered),
                sum(options[f][c] for f in serves[c] & uncovered),
                c.key,
            ),
        )
        chosen.append(best_c)
        uncovered -= serves[best_c]
    assignment = (
        {
            fp: min((c for c in chosen if fp in serves[c]), key=lambda c: (options[fp][c], c.key))
            for fp in set().union(*serves.values())
        }
        if serves
        else {}
    )
    assignment = _fold_prefixes(assignment, options, base, settings)
    return {fp: Choice(fp, c, options[fp][c]) for fp, c in sorted(assignment.items())}


def _saving(base: float, cost: float) -> float:
    return 0.0 if base <= 0 else 100.0 * (1.0 - cost / base)


def _threshold(candidate: IndexCandidate, settings: ProfilingSettings) -> float:
    return settings.expression_min_saving_pct if candidate.expressions else settings.min_saving_pct


def is_prefix(narrow: IndexCandidate, wide: IndexCandidate) -> bool:
    """``narrow``'s key is a leading part of ``wide``'s, on the same table, method and predicate."""
    return (
        narrow != wide
        and (narrow.table, narrow.method, narrow.predicate) == (wide.table, wide.method, wide.predicate)
        and len(narrow.columns) < len(wide.columns)
        and wide.columns[: len(narrow.columns)] == narrow.columns
    )


def _fold_prefixes(
    assignment: dict[str, IndexCandidate],
    options: Mapping[str, Mapping[IndexCandidate, float]],
    base: Mapping[str, float],
    settings: ProfilingSettings,
) -> dict[str, IndexCandidate]:
    """Never ``(a, b)`` beside ``(a, b, c)``: the queries of a chosen prefix move to the wider index when the
    planner says it still saves the threshold for each of them."""
    out = dict(assignment)
    for narrow in sorted(set(out.values()), key=lambda c: (len(c.columns), c.key)):
        for wide in sorted(set(out.values()), key=lambda c: (-len(c.columns), c.key)):
            if not is_prefix(narrow, wide):
                continue
            members = [fp for fp, c in out.items() if c == narrow]
            if all(
                wide in options.get(fp, {})
                and _saving(base[fp], options[fp][wide]) >= _threshold(wide, settings)
                for fp in members
            ):
                for fp in members:
                    out[fp] = wide
                break
    return out


def why_this_type(
    candidate: IndexCandidate,
    fraction: float | None = None,
    correlation: float | None = None,
    point_lookups: bool = False,
) -> str:
    """One sentence on why this kind of index, for the recommendation."""
    if candidate.method == "brin":
        corr = f" (correlation {correlation:.2f})" if correlation is not None else ""
        return (
            "BRIN: the table is large and append-only and the column follows the physical row order"
            f"{corr}, so a per-128-page min/max summary lets range scans skip most of the table at a "
            "fraction of a B-tree's size and write cost"
        )
    if candidate.predicate:
        share = f"{100 * fraction:.3g} % of the rows" if fraction is not None else "a rare value"
        return (
            f"partial B-tree: every logged call of these queries filters on {candidate.predicate}, which "
            f"matches {share}; the index holds only those rows, so it is small and cheap to maintain"
        )
    if candidate.expressions:
        return (
            f"expression index: the queries filter on {', '.join(candidate.expressions)}, which an index on "
            "the bare column cannot serve; the expression is IMMUTABLE, so it can be indexed"
        )
    tail = (
        " (a BRIN index would be smaller, but these are point lookups or sorted reads)"
        if point_lookups
        else ""
    )
    return "B-tree on plain columns: equality columns first, then the range or sort column" + tail
