"""Deterministic insights (the seed's ``generate_insights``), the LLM prompt, the Slack summary and
predictive scaling advice, all from computed aggregates. Pure: no database, network or Dagster.

``build_facts`` condenses the analysis of one window (health tables, anomalies, trends, failure
predictions, optimizations) into a small JSON-able dict of aggregates; ``generate_insights`` turns the
facts into the seed's shape (``summary``, ``health``, ``migrations{total, failed, successRate}``,
``recommendations``) plus a few additions. The same facts, without absolute timestamps, are all an LLM
ever sees (``llm_messages``): no raw rows, no secrets.

Health levels (documented in docs/AI_OPS_GUIDE.md, "Reading the outputs"):

* ``critical``: a component's uptime below 90 % (the seed's critical uptime) or its error rate at or above
  10 % over the window, a critical-severity anomaly, or a failure risk of 0.7 or more (the seed's
  predictive-scaling bar);
* ``warning``: uptime below 95 % (the seed's low uptime), error rate at or above 5 %, a high-severity
  anomaly, a failure risk of 0.5 or more, a degrading trend, or a failed migration;
* ``good`` otherwise.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from autopilot_pipeline.aiops.metric_kinds import metric_kind
from autopilot_pipeline.aiops.risk_report import risk_name
from autopilot_pipeline.slack_text import escape

__all__ = [
    "GOOD_MESSAGE",
    "HEALTH_LEVELS",
    "PROMPT_VERSION",
    "add_predictive_scaling",
    "build_facts",
    "generate_insights",
    "json_safe",
    "llm_messages",
    "prompt_facts",
    "slack_message",
]

HEALTH_LEVELS = ("good", "warning", "critical")
GOOD_MESSAGE = "System is performing well - no immediate action needed"  # the seed's words
PROMPT_VERSION = "aiops-insights-v1"

CRITICAL_UPTIME_PCT = 90.0
LOW_UPTIME_PCT = 95.0
CRITICAL_ERROR_RATE = 0.10
HIGH_ERROR_RATE = 0.05
RISK_ACT = 0.5
RISK_CRITICAL = 0.7
RISK_LISTED = 0.2
MAX_RECOMMENDATIONS = 8
_SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "none": 4}
_PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}
_IMPACT = {
    "high": "Significant performance improvement expected",
    "medium": "Moderate performance improvement expected",
    "low": "Minor improvements available",
    None: "No optimizations needed: the system is well tuned",
}


def _num(value: Any, digits: int = 4) -> float | None:
    """A float rounded to ``digits`` significant digits, or None for missing/non-finite values."""
    if value is None:
        return None
    v = float(value)
    if not math.isfinite(v):
        return None
    if v == 0:
        return 0.0
    return round(v, max(0, digits - 1 - int(math.floor(math.log10(abs(v))))))


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 1)


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None and datetimes as ISO strings, recursively (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# -------------------------------------------------------------------------------------------------- facts


def build_facts(
    *,
    window_start: datetime,
    window_end: datetime,
    components: pl.DataFrame,
    releases: Mapping[str, int],
    anomalies: pl.DataFrame,
    trends: pl.DataFrame,
    predictions: Sequence[Mapping[str, Any]],
    optimizations: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Aggregates of one analysis window.

    ``components``: per component checks, up_checks, events, errors, p95_ms, worst_p95_ms, health_score;
    ``releases``: migrations_total/failed/rolled_back and deployments_*; ``anomalies``: anomalous rows
    (component, metric, bucket_start, severity, confidence, reason) — those of the window are counted;
    ``trends``: window_hours, component, metric, trend, slope_per_day, p_value; ``predictions``: the seed's
    prediction dicts; ``optimizations``: the seed's optimize_system JSON.
    """
    comps = components.sort("component")
    checks = int(comps["checks"].sum()) if comps.height else 0
    up = int(comps["up_checks"].sum()) if comps.height else 0
    events = int(comps["events"].sum()) if comps.height else 0
    errors = int(comps["errors"].sum()) if comps.height else 0
    scores = [s for s in comps["health_score"].to_list() if s is not None] if comps.height else []
    by_component = [
        {
            "component": r["component"],
            "checks": int(r["checks"]),
            "uptimePct": _num(100.0 * r["up_checks"] / r["checks"]) if r["checks"] else None,
            "errorRate": _num(r["errors"] / r["events"]) if r["events"] else None,
            "p95Ms": _num(r["p95_ms"]),
            "worstP95Ms": _num(r["worst_p95_ms"]),
            "healthScore": _num(r["health_score"]),
        }
        for r in comps.iter_rows(named=True)
    ]
    start_ts = pl.lit(window_start).cast(pl.Datetime("us", "UTC"))
    end_ts = pl.lit(window_end).cast(pl.Datetime("us", "UTC"))
    recent = anomalies.filter((pl.col("bucket_start") >= start_ts) & (pl.col("bucket_start") < end_ts))
    top = recent.with_columns(
        pl.col("severity").replace_strict(_SEVERITY_RANK, default=9, return_dtype=pl.Int64).alias("_rank")
    ).sort(["_rank", "confidence", "bucket_start"], descending=[False, True, True])
    anomaly_facts = {
        "total": recent.height,
        "bySeverity": {s: n for s, n in recent.group_by("severity").len().sort("severity").iter_rows()},
        "byComponent": {c: n for c, n in recent.group_by("component").len().sort("component").iter_rows()},
        "top": [
            {
                "component": r["component"],
                "metric": r["metric"],
                "severity": r["severity"],
                "confidence": _num(r["confidence"], 3),
                "reason": r["reason"],
                "hoursAgo": _hours(window_end - r["bucket_start"] - timedelta(hours=1)),
            }
            for r in top.head(10).iter_rows(named=True)
        ],
    }
    moving = trends.filter(pl.col("trend") != "stable").sort(
        ["trend", "window_hours", "p_value", "component", "metric"],
        descending=[False, True, False, False, False],
    )
    trend_facts = [
        {
            "component": r["component"],
            "metric": r["metric"],
            "windowHours": int(r["window_hours"]),
            "trend": r["trend"],
            "slopePerDay": _num(r["slope_per_day"]),
            "pValue": _num(r["p_value"], 2),
        }
        for r in moving.head(20).iter_rows(named=True)
    ]
    risks = []
    for p in sorted(predictions, key=lambda d: (-float(d["probability"]), d["component"], d["metric"])):
        if float(p["probability"]) < RISK_LISTED or len(risks) >= 10:
            continue
        crossing = p.get("expectedCrossingAt")
        ahead = None
        if crossing:
            at = datetime.fromisoformat(str(crossing))
            ahead = _hours(at - window_end)
        risks.append(
            {
                "component": p["component"],
                "metric": p["metric"],
                "probability": _num(p["probability"], 3),
                "riskName": risk_name(p),
                "prediction": p["prediction"],
                "threshold": _num(p.get("threshold")),
                "direction": p.get("direction"),
                "hoursUntilExpectedCrossing": ahead,
                "recommendations": list(p.get("recommendations") or []),
            }
        )
    opt = optimizations or {}
    return {
        "windowHours": _hours(window_end - window_start),
        "windowStart": window_start.isoformat(),
        "windowEnd": window_end.isoformat(),
        "components": comps.height,
        "healthChecks": checks,
        "upChecks": up,
        "events": events,
        "errors": errors,
        "uptimePct": _num(100.0 * up / checks) if checks else None,
        "errorRate": _num(errors / events) if events else None,
        "healthScore": _num(sum(scores) / len(scores)) if scores else None,
        "byComponent": by_component,
        "migrations": {
            "total": int(releases.get("migrations_total", 0)),
            "failed": int(releases.get("migrations_failed", 0)),
            "rolledBack": int(releases.get("migrations_rolled_back", 0)),
        },
        "deployments": {
            "total": int(releases.get("deployments_total", 0)),
            "failed": int(releases.get("deployments_failed", 0)),
            "rolledBack": int(releases.get("deployments_rolled_back", 0)),
        },
        "anomalies": anomaly_facts,
        "trends": trend_facts,
        "risks": risks,
        "optimizations": {
            "total": int(opt.get("totalOptimizations", 0)),
            "top": [
                {k: o.get(k) for k in ("type", "priority", "description", "action", "impact")}
                for o in list(opt.get("optimizations") or [])[:5]
            ],
        },
    }


# ----------------------------------------------------------------------------------------------- insights


def _rate_text(rate: float) -> str:
    return f"{100 * rate:.1f}%"


def _success_rate(total: int, failed: int) -> str:
    if total == 0:
        return "n/a"
    text = f"{100 * (total - failed) / total:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _health(facts: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The health level and the reasons for it."""
    critical, warning = [], []
    for c in facts["byComponent"]:
        uptime, rate = c["uptimePct"], c["errorRate"]
        if uptime is not None and uptime < CRITICAL_UPTIME_PCT:
            critical.append(f"{c['component']} uptime {uptime:g}% < {CRITICAL_UPTIME_PCT:g}%")
        elif uptime is not None and uptime < LOW_UPTIME_PCT:
            warning.append(f"{c['component']} uptime {uptime:g}% < {LOW_UPTIME_PCT:g}%")
        if rate is not None and rate >= CRITICAL_ERROR_RATE:
            critical.append(f"{c['component']} error rate {_rate_text(rate)}")
        elif rate is not None and rate >= HIGH_ERROR_RATE:
            warning.append(f"{c['component']} error rate {_rate_text(rate)}")
    severities = facts["anomalies"]["bySeverity"]
    if severities.get("critical"):
        critical.append(f"{severities['critical']} critical anomalies")
    if severities.get("high"):
        warning.append(f"{severities['high']} high-severity anomalies")
    for r in facts["risks"]:
        if r["probability"] >= RISK_CRITICAL:
            critical.append(f"{r['component']} {r['metric']} failure risk {r['probability']:.2f}")
        elif r["probability"] >= RISK_ACT:
            warning.append(f"{r['component']} {r['metric']} failure risk {r['probability']:.2f}")
    degrading = [t for t in facts["trends"] if t["trend"] == "degrading"]
    if degrading:
        warning.append(f"{len(degrading)} degrading trend(s)")
    if facts["migrations"]["failed"]:
        warning.append(f"{facts['migrations']['failed']} failed migration(s)")
    if critical:
        return "critical", critical + warning
    if warning:
        return "warning", warning
    return "good", []


def _recommendations(facts: Mapping[str, Any]) -> list[str]:
    recs: list[str] = []
    hours = facts["windowHours"]
    for r in facts["risks"]:
        if r["probability"] < RISK_ACT:
            continue
        first = f" {r['recommendations'][0]}." if r["recommendations"] else ""
        name = r.get("riskName", "risk score")
        recs.append(f"Act on {r['component']}: {r['prediction']} ({name} {r['probability']:.2f}).{first}")
    for c in facts["byComponent"]:
        if c["uptimePct"] is not None and c["uptimePct"] < LOW_UPTIME_PCT:
            recs.append(
                f"Investigate {c['component']} availability: uptime {c['uptimePct']:g}% over the last {hours:g} hours"
            )
        if c["errorRate"] is not None and c["errorRate"] >= HIGH_ERROR_RATE:
            recs.append(
                f"Investigate errors on {c['component']}: {_rate_text(c['errorRate'])} of events failed "
                f"over the last {hours:g} hours"
            )
    serious: dict[str, list[Mapping[str, Any]]] = {}
    for a in facts["anomalies"]["top"]:
        if a["severity"] in ("critical", "high"):
            serious.setdefault(a["component"], []).append(a)
    for comp, items in serious.items():
        metrics = ", ".join(sorted({a["metric"] for a in items}))
        recs.append(
            f"Review the {items[0]['severity']} anomalies on {comp} ({metrics}): {items[0]['reason']}"
        )
    seen = set()
    for t in facts["trends"]:
        key = (t["component"], t["metric"])
        if t["trend"] != "degrading" or key in seen:
            continue
        seen.add(key)
        recs.append(
            f"{t['component']} {t['metric']} is degrading over the last {t['windowHours']} hours "
            f"({t['slopePerDay']:+g} per day, p = {t['pValue']:g})"
        )
    failed = facts["migrations"]["failed"]
    if failed:
        recs.append(
            f"Review {failed} failed migration(s) of {facts['migrations']['total']} in the last {hours:g} hours"
        )
    for o in facts["optimizations"]["top"]:
        if o.get("priority") == "high":
            recs.append(f"{o['description']}: {o['action']} ({o['impact']})")
    return recs[:MAX_RECOMMENDATIONS] or [GOOD_MESSAGE]


def generate_insights(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The seed's insights JSON from :func:`build_facts` output (deterministic; no LLM).

    Seed fields first (``summary``, ``health``, ``migrations``, ``recommendations``); additions:
    ``healthReasons``, ``uptimePct``, ``errorRate``, ``healthScore``, ``anomalies``, ``atRisk``,
    ``degradingTrends``, ``window``.
    """
    rate = facts["errorRate"] or 0.0
    summary = f"System processed {facts['healthChecks']:,} health checks with {_rate_text(rate)} error rate"
    if facts["components"]:
        summary += f" across {facts['components']} component(s) in the last {facts['windowHours']:g} hours"
    health, reasons = _health(facts)
    mig = facts["migrations"]
    return {
        "summary": summary,
        "health": health,
        "migrations": {
            "total": mig["total"],
            "failed": mig["failed"],
            "successRate": _success_rate(mig["total"], mig["failed"]),
        },
        "recommendations": _recommendations(facts),
        "healthReasons": reasons,
        "uptimePct": facts["uptimePct"],
        "errorRate": facts["errorRate"],
        "healthScore": facts["healthScore"],
        "anomalies": facts["anomalies"]["total"],
        "atRisk": [
            {k: r[k] for k in ("component", "metric", "probability", "prediction")}
            for r in facts["risks"]
            if r["probability"] >= RISK_ACT
        ],
        "degradingTrends": sum(1 for t in facts["trends"] if t["trend"] == "degrading"),
        "window": {"start": facts["windowStart"], "end": facts["windowEnd"], "hours": facts["windowHours"]},
    }


# ---------------------------------------------------------------------------------------------------- LLM

_SYSTEM_PROMPT = (
    "You are a site reliability engineer writing a short analysis for the on-call team of a web application. "
    "You receive aggregate monitoring facts as JSON (health checks, error rates, anomalies, trends, failure "
    "risk scores, optimization advice) and the deterministic assessment made from them. In 3 to 5 sentences: "
    "say what stands out, the most likely causes, and what to do next, most urgent first. Use only the facts "
    "given and do not invent numbers. Call each failure risk by its riskName (a risk score unless its "
    "calibration met its targets). Plain text, no lists, no markdown."
)


def prompt_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The facts an LLM may see: aggregates only, without absolute timestamps, so the same situation at
    another hour is the same prompt (and the same cache entry)."""
    out = copy.deepcopy(dict(facts))
    out.pop("windowStart", None)
    out.pop("windowEnd", None)
    return out


def llm_messages(facts: Mapping[str, Any], insights: Mapping[str, Any]) -> list[dict[str, str]]:
    """Chat messages for the narrative: a fixed system prompt and the facts plus the deterministic
    assessment, as canonical JSON (sorted keys, so equal facts give byte-equal prompts)."""
    assessment = {k: insights[k] for k in ("summary", "health", "migrations", "recommendations")}
    user = (
        "Facts:\n"
        + json.dumps(prompt_facts(facts), sort_keys=True, separators=(",", ":"))
        + "\nDeterministic assessment:\n"
        + json.dumps(assessment, sort_keys=True, separators=(",", ":"))
    )
    return [{"role": "system", "content": _SYSTEM_PROMPT}, {"role": "user", "content": user}]


# -------------------------------------------------------------------------------------------------- Slack

_SLACK_LIMIT = 3500


def slack_message(insights: Mapping[str, Any]) -> dict[str, str]:
    """The seed workflow's "AI Ops Analysis Complete" Slack message: health, summary, recommendations and
    the AI analysis when there is one (plain ``text``, so any incoming webhook renders it)."""
    icon = {"good": ":large_green_circle:", "warning": ":large_orange_circle:", "critical": ":red_circle:"}
    lines = [
        f"🤖 *AI Ops Analysis Complete* {icon.get(insights['health'], '')} health: *{insights['health']}*",
        escape(insights["summary"]),
    ]
    mig = insights["migrations"]
    if mig["total"]:
        lines.append(
            f"Migrations: {mig['total']} ({mig['failed']} failed, success rate {mig['successRate']})"
        )
    lines += [f"• {escape(r)}" for r in insights["recommendations"]]  # names from the data: escaped
    if insights.get("aiAnalysis"):
        lines.append(f"_AI analysis:_ {escape(insights['aiAnalysis'])}")
    text = "\n".join(lines)
    if len(text) > _SLACK_LIMIT:
        text = text[: _SLACK_LIMIT - 1] + "…"
    return {"text": text}


# ----------------------------------------------------------------------------------------- optimizations


def add_predictive_scaling(
    report: Mapping[str, Any], predictions: Sequence[Mapping[str, Any]], min_probability: float = RISK_ACT
) -> dict[str, Any]:
    """``optimize_system`` JSON with the seed's "predictive scaling": resource and latency metrics whose
    failure risk reaches ``min_probability`` become ``resource_scaling`` items (merged into an existing
    resource_scaling optimization, or a new one), and the totals and ``estimatedImpact`` are recomputed."""
    out = copy.deepcopy(dict(report))
    optimizations = list(out.get("optimizations") or [])
    items = []
    for p in sorted(predictions, key=lambda d: (-float(d["probability"]), d["component"], d["metric"])):
        prob = float(p["probability"])
        if prob < min_probability or metric_kind(str(p["metric"])) not in ("custom", "latency"):
            continue
        side = "above" if p.get("direction") == "above" else "below"
        items.append(
            {
                "key": f"forecast:{p['component']}:{p['metric']}",
                "priority": "high" if prob >= RISK_CRITICAL else "medium",
                "table": None,
                "description": f"{p['metric']} on {p['component']} forecast to go {side} "
                f"{float(p['threshold']):g} within {p['timeframe']} ({risk_name(p)} {prob:.2f})",
                "actionSql": None,
                "estimatedImprovementPct": None,
                "component": p["component"],
                "riskScore": round(prob, 4),
            }
        )
    if not items:
        return out
    top = min((i["priority"] for i in items), key=_PRIORITY_RANK.__getitem__)
    what = f"{len(items)} resource(s) forecast to run out within 24 hours"
    existing = next((o for o in optimizations if o.get("type") == "resource_scaling"), None)
    if existing is None:
        optimizations.append(
            {
                "type": "resource_scaling",
                "priority": top,
                "description": what,
                "action": "Scale the affected components (memory, CPU, instances) before the forecast crossing",
                "impact": "Avoid resource exhaustion and the outage it leads to",
                "count": len(items),
                "items": items,
            }
        )
    else:
        existing["items"] = list(existing.get("items") or []) + items
        existing["count"] = len(existing["items"])
        existing["description"] = f"{existing['description']}; {what}"
        if _PRIORITY_RANK[top] < _PRIORITY_RANK.get(existing.get("priority"), 9):
            existing["priority"] = top
    optimizations.sort(key=lambda o: _PRIORITY_RANK.get(o.get("priority"), 9))
    out["optimizations"] = optimizations
    out["totalOptimizations"] = len(optimizations)
    out["estimatedImpact"] = _IMPACT[optimizations[0]["priority"] if optimizations else None]
    return out
