"""Migrations and deployments (with failures and rollbacks) in business hours."""

from __future__ import annotations

import numpy as np
import polars as pl

from autopilot_pipeline.demo.common import _DAY, _HOUR, _pick, _rng, _ts
from autopilot_pipeline.demo.incidents import _Plan

# --------------------------------------------------------------------------------------------- releases

_MIGRATION_NAMES = (
    "add_orders_status_column",
    "create_table_refunds",
    "backfill_customer_tier",
    "add_events_payload_gin",
    "drop_legacy_sessions",
    "rename_products_title_to_name",
    "add_check_constraint_order_totals",
    "create_view_daily_revenue",
    "alter_customers_email_citext",
    "partition_events_by_month",
    "add_column_orders_shipped_at",
    "create_function_touch_updated_at",
)
_MIGRATION_ERRORS = (
    'column "shipped_at" of relation "orders" already exists',
    "canceling statement due to lock timeout",
    "deadlock detected",
    "canceling statement due to statement timeout",
    'could not create unique index "customers_email_key": key (email) is duplicated',
)


def _business_times(rng: np.random.Generator, days_us: np.ndarray, start: int, end: int) -> np.ndarray:
    """A time between 08:00 and 19:00 UTC on each given day, kept inside [start, end)."""
    at = days_us + ((8.0 + 11.0 * rng.random(days_us.shape[0])) * _HOUR).astype(np.int64)
    return at[(at >= start) & (at < end)]


def _migration_log(start: int, end: int, seed: int) -> pl.DataFrame:
    rng = _rng(seed, "migrations")
    days = np.arange(start - start % _DAY, end, _DAY, dtype=np.int64)
    per_day = rng.integers(1, 4, days.shape[0])
    started = np.sort(_business_times(rng, np.repeat(days, per_day), start, end))
    n = started.shape[0]
    outcome = rng.random(n)
    failed = outcome < 0.10
    rolled_back = (outcome >= 0.10) & (outcome < 0.15)
    duration = np.round(rng.lognormal(np.log(1200.0), 0.9, n) * np.where(failed, 0.4, 1.0), 1)
    error = np.where(failed, rng.integers(0, len(_MIGRATION_ERRORS), n), -1)
    return pl.DataFrame(
        [
            _ts("started_at", started).dt.strftime("%Y%m%d%H%M%S").alias("version"),
            _pick(_MIGRATION_NAMES, rng.integers(0, len(_MIGRATION_NAMES), n), "name"),
            _ts("started_at", started),
            _ts("finished_at", started + (duration * 1000).astype(np.int64)),
            pl.Series("duration_ms", duration),
            _pick(
                ("success", "failed", "rolled_back"),
                np.where(failed, 1, np.where(rolled_back, 2, 0)),
                "status",
            ),
            pl.Series("rolled_back", rolled_back),
            _pick(_MIGRATION_ERRORS, error, "error"),
            pl.Series("metadata", ['{"applied_by": "ci"}'] * n, dtype=pl.String),
        ]
    )


def _deployment_log(
    names: tuple[str, ...], start: int, end: int, plans: list[_Plan], seed: int
) -> tuple[pl.DataFrame, list[_Plan]]:
    """Background deployments plus, for each bad_deploy incident, the bad release and its rollback.

    Returns the frame and the plans with the bad release's versions filled into ``detail``.
    """
    rng = _rng(seed, "deployments")
    days = np.arange(start - start % _DAY, end, _DAY, dtype=np.int64)
    weekday = ((days // _DAY) + 3) % 7 < 5
    columns: dict[str, list] = {
        k: [] for k in ("source", "version", "started_at", "duration", "status", "rb", "meta")
    }
    updated: list[_Plan] = list(plans)
    for c, name in enumerate(names):
        per_day = rng.poisson(np.where(weekday, 1.5, 0.3))
        started = np.sort(_business_times(rng, np.repeat(days, per_day), start, end))
        bad = [i for i, p in enumerate(plans) if p.kind == "bad_deploy" and p.component == c]
        for i in bad:  # keep routine deploys away from the bad one, so its rollback is unambiguous
            started = started[np.abs(started - plans[i].start) > 3 * _HOUR]
        duration = np.round(rng.lognormal(np.log(90_000.0), 0.35, started.shape[0]), 0)
        outcome = rng.random(started.shape[0])
        status = np.where(outcome < 0.05, "failed", np.where(outcome < 0.08, "rolled_back", "success"))
        release = [
            (int(s), float(d), str(st), "deploy") for s, d, st in zip(started, duration, status, strict=True)
        ]
        for i in bad:
            plan = plans[i]
            deploy_ms = float(np.round(rng.uniform(60_000, 120_000)))
            release.append((plan.start - int(deploy_ms * 1000), deploy_ms, "bad", "deploy"))
            rollback_ms = float(np.round(rng.uniform(40_000, 90_000)))
            release.append((plan.end - int(rollback_ms * 1000), rollback_ms, "success", f"rollback:{i}"))
        release.sort()
        minor, patch = int(rng.integers(3, 20)), int(rng.integers(0, 10))
        live = previous = f"v1.{minor}.{patch}"  # version running before the period
        for started_us, duration_ms, outcome_status, action in release:
            if action.startswith("rollback:"):
                i = int(action.split(":")[1])
                version, meta = previous, f'{{"deployed_by": "oncall", "rollback_of": "{live}"}}'
                updated[i] = _Plan(
                    **{**plans[i].__dict__, "detail": f"deploy {live} (rolled back to {previous})"}
                )
                live = previous
                row_status, rolled = "success", False
            else:
                patch += 1
                if rng.random() < 0.15:
                    minor, patch = minor + 1, 0
                version = f"v1.{minor}.{patch}"
                sha = "".join(rng.choice(list("0123456789abcdef"), 7))
                meta = f'{{"deployed_by": "ci", "commit": "{sha}"}}'
                row_status = "failed" if outcome_status == "bad" else outcome_status
                rolled = outcome_status in ("bad", "rolled_back")
                if outcome_status in ("success", "bad"):
                    previous, live = live, version
            columns["source"].append(name)
            columns["version"].append(version)
            columns["started_at"].append(started_us)
            columns["duration"].append(duration_ms)
            columns["status"].append(row_status)
            columns["rb"].append(rolled)
            columns["meta"].append(meta)
    started = np.asarray(columns["started_at"], dtype=np.int64)
    duration = np.asarray(columns["duration"], dtype=np.float64)
    frame = pl.DataFrame(
        [
            pl.Series("source", columns["source"], dtype=pl.String),
            pl.Series("version", columns["version"], dtype=pl.String),
            _ts("started_at", started),
            _ts("finished_at", started + (duration * 1000).astype(np.int64)),
            pl.Series("duration_ms", duration),
            pl.Series("status", columns["status"], dtype=pl.String),
            pl.Series("rolled_back", columns["rb"], dtype=pl.Boolean),
            pl.Series("metadata", columns["meta"], dtype=pl.String),
        ]
    ).sort(["started_at", "source"], maintain_order=True)
    return frame, updated
