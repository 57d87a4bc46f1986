"""Recommendations from statistics: missing and unused indexes, slow queries, vacuum/analyze maintenance,
wraparound and resource pressure. Pure: the store hands plain values in."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from autopilot_pipeline.profiling.indexes import IndexCandidate, index_name, quote_ident
from autopilot_pipeline.profiling.report import plural
from autopilot_pipeline.profiling.settings import XID_STOP_MARGIN, XID_WRAP_LIMIT, ProfilingSettings

# --------------------------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Recommendation:
    """One row of ``automation.performance_recommendations``; ``key`` is stable across runs."""

    key: str
    type: str
    priority: str
    description: str
    table_name: str | None = None
    action_sql: str | None = None
    impact: str | None = None
    estimated_improvement_pct: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def missing_index_findings(
    advice: Sequence[Mapping[str, Any]], settings: ProfilingSettings
) -> list[Recommendation]:
    """Index advice as recommendations. Planner-verified (HypoPG) advice saving ``high_saved_ms`` or more in
    the window is high priority; heuristic advice is never high, so auto-remediation never applies a guess."""
    out = []
    for rank, item in enumerate(advice, start=1):
        candidate: IndexCandidate = item["candidate"]
        verified = item["verification"] == "hypopg"
        if verified:
            priority = "high" if item["saved_ms"] >= settings.high_saved_ms else "medium"
            how = f"verified with HypoPG (plan cost {item['base_cost']:.0f} -> {item['cost']:.0f})"
        else:
            priority = "medium" if item["saved_ms"] >= settings.high_saved_ms else "low"
            how = "by a heuristic estimate (HypoPG is not installed, so the planner did not verify it)"
        cols = ", ".join(candidate.columns)
        shapes = plural(len(item["fingerprints"]), "query shape")
        details = dict(item.get("details") or {})
        kind = {"brin": "BRIN index", "partial": "Partial index", "expression": "Expression index"}.get(
            candidate.kind, "Index"
        )
        where = f" WHERE {candidate.predicate}" if candidate.predicate else ""
        size = details.get("estimated_size_bytes")
        extra = f"; ~{human_size(size)}" if size else ""
        if details.get("index_writes_per_day") is not None:
            extra += f", {details['index_writes_per_day']:,.0f} index writes/day"
        out.append(
            Recommendation(
                key=candidate.key,
                type="missing_index",
                priority=priority,
                table_name=candidate.table,
                description=(
                    f"{kind} {candidate.table} ({cols}){where} for {shapes} ({item['calls']} calls): "
                    f"~{math.floor(item['saving_pct'])} % cheaper, {how}{extra}"
                ),
                action_sql=candidate.definition() + ";",
                impact=f"Estimated {item['saved_ms'] / 1000:.1f} s less query time per analysis window (rank {rank})",
                estimated_improvement_pct=round(item["saving_pct"], 1),
                metadata={
                    "verification": item["verification"],
                    "index_columns": list(candidate.columns),
                    "index_name": index_name(candidate),
                    "fingerprints": item["fingerprints"],
                    "calls": item["calls"],
                    "estimated_saved_ms": round(item["saved_ms"], 1),
                    "plan_cost_before": round(item["base_cost"], 2),
                    "plan_cost_after": round(item["cost"], 2),
                    "rank": rank,
                    "index_method": candidate.method,
                    "index_predicate": candidate.predicate,
                    **details,
                },
            )
        )
    return out


def query_optimization_findings(
    slow: pl.DataFrame, advised: set[str], settings: ProfilingSettings
) -> list[Recommendation]:
    """Slow fingerprints no verified index fixes: review the query itself."""
    out = []
    for row in slow.filter(pl.col("is_slow")).iter_rows(named=True):
        if row["fingerprint"] in advised:
            continue
        p95 = row.get("p95_ms")
        high = (p95 or row["mean_ms"]) >= 5 * settings.slow_ms or bool(row.get("is_new"))
        tables = row.get("tables") or ""
        note = row.get("analysis") or "no index helps according to the planner"
        out.append(
            Recommendation(
                key=f"query_optimization:{row['fingerprint']}",
                type="query_optimization",
                priority="high" if high else "medium",
                table_name=tables.split(",")[0] if tables else None,
                description=(
                    f"{'New slow' if row.get('is_new') else 'Slow'} query ({row['calls']} calls, mean "
                    f"{row['mean_ms']:.0f} ms{f', p95 {p95:.0f} ms' if p95 is not None else ''}): "
                    f"{_shorten(row.get('normalized_query') or '', 160)} — {note}"
                ),
                impact=f"{row['total_ms'] / 1000:.1f} s of query time in the window",
                metadata={
                    "fingerprint": row["fingerprint"],
                    "calls": row["calls"],
                    "mean_ms": round(row["mean_ms"], 2),
                    "p95_ms": None if p95 is None else round(p95, 2),
                    "is_new": bool(row.get("is_new")),
                    "source": row.get("source"),
                },
            )
        )
    return out


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def vacuum_threshold(
    reltuples: float, base: float, scale: float, max_threshold: float | None = None
) -> float:
    """Dead tuples at which autovacuum vacuums a table: ``base + scale × reltuples`` (PG 18 caps it at
    ``autovacuum_vacuum_max_threshold`` unless that is -1). ``reltuples`` of -1 (never analyzed) counts as 0."""
    value = base + scale * max(reltuples, 0.0)
    if max_threshold is not None and max_threshold >= 0:
        value = min(value, max_threshold)
    return value


def analyze_threshold(reltuples: float, base: float, scale: float) -> float:
    """Rows modified since the last analyze at which autoanalyze runs."""
    return base + scale * max(reltuples, 0.0)


def insert_vacuum_threshold(reltuples: float, base: float, scale: float) -> float | None:
    """Inserts since the last vacuum at which autovacuum vacuums (PG 13+); None when disabled (base -1)."""
    if base is None or base < 0:
        return None
    return base + scale * max(reltuples, 0.0)


def _days_since(moment: Any, now: Any) -> float | None:
    if moment is None:
        return None
    return (now - moment).total_seconds() / 86400.0


def maintenance_findings(tables: pl.DataFrame, now: Any, settings: ProfilingSettings) -> list[Recommendation]:
    """VACUUM and ANALYZE advice by autovacuum's own trigger formulas, with each table's effective settings.

    ``tables`` has, per table: schema_name, table_name, reltuples, n_live_tup, n_dead_tup,
    n_mod_since_analyze, n_ins_since_vacuum, last_vacuum, last_autovacuum, last_analyze, last_autoanalyze,
    autovacuum_enabled, vac_threshold, vac_scale, vac_max_threshold, ins_threshold, ins_scale,
    ana_threshold, ana_scale.
    """
    out = []
    for t in tables.iter_rows(named=True):
        name = f"{t['schema_name']}.{t['table_name']}"
        quoted = f"{quote_ident(t['schema_name'])}.{quote_ident(t['table_name'])}"
        reltuples = float(t["reltuples"] if t["reltuples"] is not None else -1)
        dead = int(t["n_dead_tup"] or 0)
        live = int(t["n_live_tup"] or 0)
        enabled = t.get("autovacuum_enabled") is not False
        last_vac = max((d for d in (t["last_vacuum"], t["last_autovacuum"]) if d is not None), default=None)
        last_ana = max((d for d in (t["last_analyze"], t["last_autoanalyze"]) if d is not None), default=None)
        vac_age = _days_since(last_vac, now)
        trigger = vacuum_threshold(reltuples, t["vac_threshold"], t["vac_scale"], t.get("vac_max_threshold"))
        dead_ratio = dead / (live + dead) if live + dead else 0.0
        meta_common = {"reltuples": reltuples, "autovacuum_enabled": enabled}
        if dead > trigger and dead >= settings.min_dead_tuples:
            stale = vac_age is None or vac_age >= settings.stale_vacuum_days
            priority = "high" if (not enabled or dead_ratio >= 0.5 or stale) else "medium"
            why = (
                "autovacuum is disabled for this table"
                if not enabled
                else (
                    "autovacuum has not caught up"
                    + (
                        f" (last vacuum {vac_age:.1f} days ago)"
                        if vac_age is not None
                        else " (never vacuumed)"
                    )
                )
            )
            out.append(
                Recommendation(
                    key=f"vacuum:{name}",
                    type="vacuum",
                    priority=priority,
                    table_name=name,
                    description=f"{name}: {dead:,} dead tuples ({100 * dead_ratio:.0f} %) exceed autovacuum's "
                    f"trigger {trigger:,.0f} (threshold + scale factor × {max(reltuples, 0):,.0f} rows); {why}",
                    action_sql=f"VACUUM (ANALYZE) {quoted};",
                    impact="Reclaims space, keeps index-only scans and plans efficient",
                    estimated_improvement_pct=round(100 * dead_ratio, 1),
                    metadata={
                        **meta_common,
                        "n_dead_tup": dead,
                        "trigger": trigger,
                        "last_vacuum_days": vac_age,
                    },
                )
            )
        else:
            ins_trigger = insert_vacuum_threshold(
                reltuples, t.get("ins_threshold"), t.get("ins_scale") or 0.0
            )
            inserted = int(t.get("n_ins_since_vacuum") or 0)
            if (
                ins_trigger is not None
                and inserted > ins_trigger
                and inserted >= settings.min_dead_tuples
                and (vac_age is None or vac_age >= settings.stale_vacuum_days or not enabled)
            ):
                out.append(
                    Recommendation(
                        key=f"vacuum:{name}",
                        type="vacuum",
                        priority="low",
                        table_name=name,
                        description=f"{name}: {inserted:,} rows inserted since the last vacuum exceed the insert "
                        f"trigger {ins_trigger:,.0f}; a vacuum sets the visibility map for index-only scans",
                        action_sql=f"VACUUM (ANALYZE) {quoted};",
                        impact="Index-only scans and freezing stay cheap",
                        metadata={**meta_common, "n_ins_since_vacuum": inserted, "trigger": ins_trigger},
                    )
                )
        modified = int(t["n_mod_since_analyze"] or 0)
        a_trigger = analyze_threshold(reltuples, t["ana_threshold"], t["ana_scale"])
        never = last_ana is None and live >= settings.min_dead_tuples
        if never or (modified > a_trigger and modified >= settings.min_dead_tuples):
            large = max(reltuples, live) >= settings.min_table_rows
            out.append(
                Recommendation(
                    key=f"analyze:{name}",
                    type="analyze",
                    priority="high" if never and large else "medium",
                    table_name=name,
                    description=(
                        f"{name} has never been analyzed ({live:,} rows): the planner guesses its statistics"
                        if never
                        else f"{name}: {modified:,} rows changed since the last analyze exceed autoanalyze's "
                        f"trigger {a_trigger:,.0f}"
                    ),
                    action_sql=f"ANALYZE {quoted};",
                    impact="Accurate row estimates, better plans",
                    metadata={**meta_common, "n_mod_since_analyze": modified, "trigger": a_trigger},
                )
            )
    return out


def wraparound_findings(
    tables: pl.DataFrame,
    freeze_max_age: float,
    database: Mapping[str, Any] | None,
    settings: ProfilingSettings,
) -> list[Recommendation]:
    """Transaction-ID wraparound risk: a table's age(relfrozenxid) against autovacuum_freeze_max_age, where
    autovacuum forces an anti-wraparound vacuum; and the XIDs left before the server stops (2^31 - 3M)."""
    out = []

    def finding(key: str, name: str | None, age: int, limit: float, action: str | None, what: str) -> None:
        ratio = age / limit if limit else 0.0
        left = XID_WRAP_LIMIT - XID_STOP_MARGIN - age
        if ratio < settings.freeze_age_medium and left > 100_000_000:
            return
        priority = "high" if ratio >= settings.freeze_age_high or left <= 100_000_000 else "medium"
        out.append(
            Recommendation(
                key=key,
                type="wraparound",
                priority=priority,
                table_name=name,
                description=f"{what}: transaction ID age {age:,} is {100 * ratio:.0f} % of "
                f"autovacuum_freeze_max_age ({limit:,.0f}); {max(left, 0):,} XIDs left before the server "
                "stops accepting writes",
                action_sql=action,
                impact="Avoids a forced anti-wraparound vacuum at a bad time, or a write outage",
                metadata={"xid_age": age, "freeze_max_age": limit, "xids_left": left},
            )
        )

    for t in tables.iter_rows(named=True):
        age = t.get("xid_age")
        if age is None:
            continue
        name = f"{t['schema_name']}.{t['table_name']}"
        limit = float(t.get("freeze_max_age") or freeze_max_age)
        quoted = f"{quote_ident(t['schema_name'])}.{quote_ident(t['table_name'])}"
        finding(f"wraparound:{name}", name, int(age), limit, f"VACUUM (FREEZE, ANALYZE) {quoted};", name)
    if database and database.get("xid_age") is not None:
        finding(
            f"wraparound:database:{database['name']}",
            None,
            int(database["xid_age"]),
            freeze_max_age,
            None,
            f"database {database['name']}",
        )
    return out


@dataclass(frozen=True)
class DatabaseStats:
    """Server- and database-level counters for resource advice."""

    name: str
    blks_hit: int
    blks_read: int
    connections: int  # all backends of client connections on the server
    max_connections: int
    reserved_connections: int = 3
    idle_connections: int = 0
    idle_in_transaction: int = 0
    shared_buffers: str = ""
    xid_age: int | None = None


def resource_findings(db: DatabaseStats, settings: ProfilingSettings) -> list[Recommendation]:
    """Cache hit ratio below 99 % (the working set does not fit in memory) and connection pressure."""
    out = []
    total = db.blks_hit + db.blks_read
    if total >= settings.cache_min_blocks:
        ratio = db.blks_hit / total
        if ratio < settings.cache_hit_min:
            out.append(
                Recommendation(
                    key=f"cache:database:{db.name}",
                    type="cache",
                    priority="high" if ratio < 0.95 else "medium",
                    description=f"Cache hit ratio {100 * ratio:.2f} % < {100 * settings.cache_hit_min:.0f} % on "
                    f"database {db.name} ({db.blks_read:,} of {total:,} block reads from disk)",
                    action_sql=None,
                    impact="Scale memory: a larger instance or shared_buffers"
                    + (f" (now {db.shared_buffers})" if db.shared_buffers else "")
                    + ", or add the missing indexes that cause large scans",
                    estimated_improvement_pct=None,
                    metadata={
                        "cache_hit_ratio": round(ratio, 5),
                        "blks_hit": db.blks_hit,
                        "blks_read": db.blks_read,
                    },
                )
            )
    usable = max(db.max_connections - db.reserved_connections, 1)
    pressure = db.connections / usable
    if pressure >= settings.connections_medium:
        idle_note = (
            f"; {db.idle_connections} idle and {db.idle_in_transaction} idle in transaction"
            if db.idle_connections or db.idle_in_transaction
            else ""
        )
        out.append(
            Recommendation(
                key=f"connections:database:{db.name}",
                type="connections",
                priority="high" if pressure >= settings.connections_high else "medium",
                description=f"{db.connections} of {usable} usable connections in use ({100 * pressure:.0f} %)"
                + idle_note,
                action_sql=None,
                impact="Put a pooler in front (PgBouncer/Supavisor, transaction mode) or scale to an instance "
                "with more connections; close idle-in-transaction sessions",
                metadata={
                    "connections": db.connections,
                    "max_connections": db.max_connections,
                    "pressure": round(pressure, 3),
                },
            )
        )
    return out


def human_size(n: int | None) -> str:
    """Bytes as people read them (kB, MB, GB)."""
    value = float(n or 0)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
