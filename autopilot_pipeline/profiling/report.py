"""The seed's ``optimize_system`` report from stored recommendations. Pure."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from autopilot_pipeline.profiling.settings import PRIORITY_RANK

# --------------------------------------------------------------------------------------------- the report

_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("query_optimization", ("query_optimization",)),
    ("indexing", ("missing_index",)),
    ("index_cleanup", ("unused_index", "duplicate_index")),
    ("maintenance", ("vacuum", "analyze", "wraparound")),
    ("resource_scaling", ("cache", "connections")),
)


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"


def _need(n: int) -> str:
    return "needs" if n == 1 else "need"


def _describe_group(group: str, recs: Sequence[Mapping[str, Any]]) -> tuple[str, str, str]:
    """(description, action, impact) for one optimization group, in the seed's words where it has them."""
    n = len(recs)
    tables = {r.get("table_name") for r in recs if r.get("table_name")}
    if group == "query_optimization":
        return (
            f"Found {plural(n, 'slow query', 'slow queries')}",
            "Review and optimize slow queries",
            "Improve response times by 30-50%",
        )
    if group == "indexing":
        pcts = [
            r["estimated_improvement_pct"] for r in recs if r.get("estimated_improvement_pct") is not None
        ]
        verified = sum(1 for r in recs if (r.get("metadata") or {}).get("verification") == "hypopg")
        lo, hi = (min(pcts), max(pcts)) if pcts else (50.0, 80.0)
        lo, hi = math.floor(lo), math.floor(hi)
        impact = f"Reduce query time by {lo}-{hi}%" if lo != hi else f"Reduce query time by {lo}%"
        note = f" ({verified} verified by the planner)" if verified else " (heuristic estimates)"
        return (
            f"{plural(len(tables), 'table')} {_need(len(tables))} indexes: "
            f"{plural(n, 'index', 'indexes')}{note}",
            "Add recommended indexes",
            impact,
        )
    if group == "index_cleanup":
        unused = sum(1 for r in recs if r["recommendation_type"] == "unused_index")
        dup = n - unused
        parts = [
            p
            for p in (
                unused and plural(unused, "unused index", "unused indexes"),
                dup and plural(dup, "duplicate index", "duplicate indexes"),
            )
            if p
        ]
        return (
            f"{' and '.join(parts)}",
            "Drop unused and duplicate indexes (DROP INDEX CONCURRENTLY)",
            "Faster writes and less disk and memory used",
        )
    if group == "maintenance":
        vac = {r.get("table_name") for r in recs if r["recommendation_type"] in ("vacuum", "wraparound")}
        ana = {r.get("table_name") for r in recs if r["recommendation_type"] == "analyze"} - vac
        parts = [
            p
            for p in (
                vac and f"{plural(len(vac), 'table')} {_need(len(vac))} VACUUM",
                ana and f"{plural(len(ana), 'table')} {_need(len(ana))} ANALYZE",
            )
            if p
        ]
        return ("; ".join(parts), "Run VACUUM ANALYZE", "Improve query performance and reclaim disk space")
    kinds = sorted({r["recommendation_type"] for r in recs})
    what = " and ".join(
        {"cache": "low cache hit ratio", "connections": "connection pressure"}[k] for k in kinds
    )
    return (
        f"Resource pressure: {what}",
        "Scale resources: memory for the cache, a pooler or a larger instance for connections",
        "Fewer disk reads and connection errors under load",
    )


def assemble_optimizations(recommendations: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The seed's ``optimize_system`` JSON: one optimization per kind of work, highest priority first.

    Each item has the seed's ``type, priority, description, action, impact`` plus ``count`` and ``items``
    (the recommendations behind it: key, table, SQL, estimated improvement) — additions, not renames.
    """
    open_recs = [r for r in recommendations if not r.get("implemented")]
    optimizations = []
    for group, types in _GROUPS:
        recs = [r for r in open_recs if r["recommendation_type"] in types]
        if not recs:
            continue
        recs.sort(
            key=lambda r: (
                PRIORITY_RANK.get(r["priority"], 9),
                -(r.get("estimated_improvement_pct") or 0),
                r["recommendation_key"],
            )
        )
        description, action, impact = _describe_group(group, recs)
        optimizations.append(
            {
                "type": group,
                "priority": recs[0]["priority"],
                "description": description,
                "action": action,
                "impact": impact,
                "count": len(recs),
                "items": [
                    {
                        "key": r["recommendation_key"],
                        "priority": r["priority"],
                        "table": r.get("table_name"),
                        "description": r["description"],
                        "actionSql": r.get("action_sql"),
                        "estimatedImprovementPct": _finite(r.get("estimated_improvement_pct")),
                        **_index_details(r),
                    }
                    for r in recs
                ],
            }
        )
    optimizations.sort(key=lambda o: PRIORITY_RANK[o["priority"]])
    top = optimizations[0]["priority"] if optimizations else None
    impact = {
        "high": "Significant performance improvement expected",
        "medium": "Moderate performance improvement expected",
        "low": "Minor improvements available",
        None: "No optimizations needed: the system is well tuned",
    }[top]
    return {
        "totalOptimizations": len(optimizations),
        "optimizations": optimizations,
        "estimatedImpact": impact,
    }


_DETAIL_KEYS = (
    ("index_type", "indexType"),
    ("queries", "queries"),
    ("estimated_saved_ms", "estimatedSavedMs"),
    ("estimated_size_bytes", "estimatedSizeBytes"),
    ("index_writes_per_day", "indexWritesPerDay"),
    ("why", "why"),
    ("brin_alternative", "brinAlternative"),
    ("btree_alternative", "btreeAlternative"),
    ("supersedes", "supersedes"),
)


def _index_details(rec: Mapping[str, Any]) -> dict[str, Any]:
    """A missing-index recommendation's structured details (queries served, predicted saving, size, write
    overhead, why this index type, the BRIN/B-tree alternative), under the report's camelCase names."""
    if rec.get("recommendation_type") != "missing_index":
        return {}
    meta = rec.get("metadata") or {}
    return {out: meta[key] for key, out in _DETAIL_KEYS if meta.get(key) is not None}


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, 1) if math.isfinite(value) else None
