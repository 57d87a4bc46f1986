"""The alert state machine: Prometheus's alerting-rule semantics, plus hysteresis and a no-data policy.

One *instance* per (rule, component) moves between ``inactive``, ``pending`` and ``firing`` exactly as a
Prometheus alerting rule with ``for:`` and ``keep_firing_for:`` does (``rules/alerting.go``, checked
against ``promtool test rules`` in ``tests/test_alerting_vs_prometheus.py``):

- condition true while inactive -> ``pending`` with ``active_at = now``;
- pending and ``now - active_at >= duration`` -> ``firing`` (a zero duration fires at the same evaluation);
- condition false while pending -> ``inactive`` (progress is lost, as in Prometheus);
- condition false while firing -> resolved at once, or, with ``keep_firing_for``, kept firing until
  ``now - keep_firing_since >= keep_firing_for`` where ``keep_firing_since`` is the first false
  evaluation (Prometheus's ``KeepFiringSince``); a true evaluation in between clears it.

Beyond Prometheus: ``recovery_threshold`` (while firing, the condition is tested against it instead of
the threshold, so a value hovering around the threshold does not flap) and a no-data policy for an
evaluation without a value (``ok``: condition false, which is what an absent series does in Prometheus;
``keep_last``: the instance is frozen; ``alert``: condition true).

Everything here is pure: no clock, no I/O. :func:`step` is the reference; :func:`evaluate_batch` is the
same machine vectorised over polars frames for the engine, and :func:`timeline` replays a series.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import polars as pl

__all__ = [
    "EVENT_SCHEMA",
    "RULE_SCHEMA",
    "SKIPPED_SCHEMA",
    "STATE_SCHEMA",
    "VALUE_SCHEMA",
    "AlertState",
    "BatchResult",
    "Condition",
    "Event",
    "EventKind",
    "InstanceState",
    "NoDataPolicy",
    "Rule",
    "TimelineStep",
    "compare",
    "evaluate_batch",
    "firing_intervals",
    "rule_problem",
    "step",
    "timeline",
]


class Condition(StrEnum):
    """The comparison operators ``automation.alert_rules.condition`` allows (``=`` is PromQL's ``==``)."""

    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    EQ = "="
    NE = "!="


class NoDataPolicy(StrEnum):
    """What an evaluation without a value means for an instance."""

    OK = "ok"
    KEEP_LAST = "keep_last"
    ALERT = "alert"


class AlertState(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


class EventKind(StrEnum):
    FIRED = "fired"
    RESOLVED = "resolved"


_ZERO = timedelta(0)


def rule_problem(
    condition: object,
    threshold: object,
    duration: timedelta | None,
    recovery_threshold: object = None,
    keep_firing_for: timedelta | None = _ZERO,
    no_data: object = NoDataPolicy.OK,
) -> str | None:
    """Why a rule cannot be evaluated, or None; the one validator behind :class:`Rule` and the batch."""
    if condition not in Condition._value2member_map_:
        return f"unknown condition {condition!r} (expected one of {', '.join(c.value for c in Condition)})"
    # Finite only: a threshold of +-Inf (or NaN) makes a rule that always or never holds, a typo rather than intent.
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not math.isfinite(threshold):
        return f"threshold must be a finite number, got {threshold!r}"
    if duration is None or duration < _ZERO:
        return f"duration must be >= 0, got {duration}"
    if keep_firing_for is None or keep_firing_for < _ZERO:
        return f"keep_firing_for must be >= 0, got {keep_firing_for}"
    if no_data not in NoDataPolicy._value2member_map_:
        return f"unknown no-data policy {no_data!r} (expected ok, keep_last or alert)"
    if recovery_threshold is not None:
        if not isinstance(recovery_threshold, int | float) or not math.isfinite(recovery_threshold):
            return f"recovery threshold must be a finite number, got {recovery_threshold!r}"
        if condition in (Condition.EQ, Condition.NE):
            return f"a recovery threshold needs an ordering condition, not {condition!r}"
        side = "<=" if condition in (Condition.GT, Condition.GE) else ">="
        if (recovery_threshold > threshold) if side == "<=" else (recovery_threshold < threshold):
            return f"recovery threshold {recovery_threshold} must be {side} {threshold} for {condition!r}"
    return None


@dataclass(frozen=True, slots=True)
class Rule:
    """The evaluation-relevant part of an ``automation.alert_rules`` row; invalid rules cannot be built."""

    condition: Condition
    threshold: float
    duration: timedelta = _ZERO
    recovery_threshold: float | None = None
    keep_firing_for: timedelta = _ZERO
    no_data: NoDataPolicy = NoDataPolicy.OK

    def __post_init__(self) -> None:
        problem = rule_problem(
            self.condition,
            self.threshold,
            self.duration,
            self.recovery_threshold,
            self.keep_firing_for,
            self.no_data,
        )
        if problem:
            raise ValueError(problem)
        object.__setattr__(self, "condition", Condition(self.condition))
        object.__setattr__(self, "no_data", NoDataPolicy(self.no_data))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Rule:
        """Build from a table row (``duration_minutes``, ``keep_firing_for_minutes``, ``no_data_policy``)."""
        return cls(
            condition=row["condition"],
            threshold=row["threshold"],
            duration=timedelta(minutes=row.get("duration_minutes") or 0),
            recovery_threshold=row.get("recovery_threshold"),
            keep_firing_for=timedelta(minutes=row.get("keep_firing_for_minutes") or 0),
            no_data=row.get("no_data_policy") or NoDataPolicy.OK,
        )


@dataclass(frozen=True, slots=True)
class InstanceState:
    """Durable state of one (rule, component) instance; the columns of ``automation.alert_state``."""

    state: AlertState = AlertState.INACTIVE
    active_at: datetime | None = None
    fired_at: datetime | None = None
    last_true_at: datetime | None = None
    keep_firing_since: datetime | None = None
    last_value: float | None = None
    last_evaluated_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", AlertState(self.state))  # accept the table's text values


@dataclass(frozen=True, slots=True)
class Event:
    """A transition worth recording or notifying: an instance started or stopped firing."""

    kind: EventKind
    at: datetime
    value: float | None
    active_at: datetime | None
    fired_at: datetime | None


def compare(value: float, condition: Condition, threshold: float) -> bool:
    """``value <condition> threshold`` with IEEE semantics, like PromQL: NaN only satisfies ``!=``."""
    match condition:
        case Condition.GT:
            return value > threshold
        case Condition.GE:
            return value >= threshold
        case Condition.LT:
            return value < threshold
        case Condition.LE:
            return value <= threshold
        case Condition.EQ:
            return value == threshold
        case Condition.NE:
            return value != threshold
    raise ValueError(f"unknown condition {condition!r}")


def step(
    state: InstanceState, value: float | None, now: datetime, rule: Rule
) -> tuple[InstanceState, tuple[Event, ...]]:
    """Evaluate one instance at ``now`` with ``value`` (None = no data); call in time order."""
    if value is None:
        if rule.no_data is NoDataPolicy.KEEP_LAST:
            return replace(state, last_evaluated_at=now), ()
        holds = rule.no_data is NoDataPolicy.ALERT
    else:
        use_recovery = state.state is AlertState.FIRING and rule.recovery_threshold is not None
        threshold = rule.recovery_threshold if use_recovery else rule.threshold
        holds = compare(value, rule.condition, threshold)  # type: ignore[arg-type]
    last_value = state.last_value if value is None else value

    if holds:
        if state.state is AlertState.FIRING:
            held = replace(
                state, keep_firing_since=None, last_true_at=now, last_value=last_value, last_evaluated_at=now
            )
            return held, ()
        active_at = now if state.state is AlertState.INACTIVE or state.active_at is None else state.active_at
        base = replace(
            state,
            active_at=active_at,
            last_true_at=now,
            keep_firing_since=None,
            last_value=last_value,
            last_evaluated_at=now,
        )
        if now - active_at >= rule.duration:
            fired = replace(base, state=AlertState.FIRING, fired_at=now)
            return fired, (Event(EventKind.FIRED, now, value, active_at, now),)
        return replace(base, state=AlertState.PENDING, fired_at=None), ()

    if state.state is AlertState.FIRING:
        since = state.keep_firing_since or now
        if rule.keep_firing_for > _ZERO and now - since < rule.keep_firing_for:
            kept = replace(state, keep_firing_since=since, last_value=last_value, last_evaluated_at=now)
            return kept, ()
        event = Event(EventKind.RESOLVED, now, value, state.active_at, state.fired_at)
        resolved = InstanceState(
            last_true_at=state.last_true_at, last_value=last_value, last_evaluated_at=now
        )
        return resolved, (event,)
    cleared = InstanceState(last_true_at=state.last_true_at, last_value=last_value, last_evaluated_at=now)
    return cleared, ()


@dataclass(frozen=True, slots=True)
class TimelineStep:
    """The instance after one evaluation of a replayed series."""

    at: datetime
    value: float | None
    state: AlertState
    events: tuple[Event, ...] = field(default=())


def timeline(
    series: Iterable[tuple[datetime, float | None]], rule: Rule, initial: InstanceState | None = None
) -> list[TimelineStep]:
    """Replay ``(time, value)`` evaluations (None = no data) through :func:`step`, in the order given."""
    state = initial or InstanceState()
    out: list[TimelineStep] = []
    for at, value in series:
        state, events = step(state, value, at, rule)
        out.append(TimelineStep(at, value, state.state, events))
    return out


def firing_intervals(steps: Iterable[TimelineStep]) -> list[tuple[datetime, datetime | None]]:
    """``[(fired_at, resolved_at or None if still firing)]`` from a replayed timeline."""
    intervals: list[tuple[datetime, datetime | None]] = []
    start: datetime | None = None
    for s in steps:
        for event in s.events:
            if event.kind is EventKind.FIRED:
                start = event.at
            elif start is not None:
                intervals.append((start, event.at))
                start = None
    if start is not None:
        intervals.append((start, None))
    return intervals


# --------------------------------------------------------------------------------------------------------
# Batch evaluation over polars frames: the same machine as `step`, one evaluation time, many instances.

_TS = pl.Datetime("us", "UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US_PER_MINUTE = 60_000_000

RULE_SCHEMA: dict[str, pl.DataType] = {
    "rule_id": pl.Int64(),
    "condition": pl.String(),
    "threshold": pl.Float64(),
    "duration_minutes": pl.Int64(),
    "recovery_threshold": pl.Float64(),
    "keep_firing_for_minutes": pl.Int64(),
    "no_data_policy": pl.String(),
}
STATE_SCHEMA: dict[str, pl.DataType] = {
    "rule_id": pl.Int64(),
    "component": pl.String(),
    "state": pl.String(),
    "active_at": _TS,
    "fired_at": _TS,
    "last_true_at": _TS,
    "keep_firing_since": _TS,
    "last_value": pl.Float64(),
    "last_evaluated_at": _TS,
}
VALUE_SCHEMA: dict[str, pl.DataType] = {
    "rule_id": pl.Int64(),
    "component": pl.String(),
    "value": pl.Float64(),
}
EVENT_SCHEMA: dict[str, pl.DataType] = {
    "rule_id": pl.Int64(),
    "component": pl.String(),
    "kind": pl.String(),
    "at": _TS,
    "value": pl.Float64(),
    "active_at": _TS,
    "fired_at": _TS,
}
SKIPPED_SCHEMA: dict[str, pl.DataType] = {"rule_id": pl.Int64(), "reason": pl.String()}


@dataclass(frozen=True, slots=True)
class BatchResult:
    """New states of every evaluated instance, the fired/resolved events, and rules skipped with a reason."""

    states: pl.DataFrame
    events: pl.DataFrame
    skipped: pl.DataFrame


def _conform(frame: pl.DataFrame, schema: Mapping[str, pl.DataType], name: str) -> pl.DataFrame:
    """Select and cast to ``schema``; optional columns missing from ``frame`` become nulls."""
    required = {"rule_id", "component", "condition", "threshold", "value"} & set(schema)
    missing = sorted(c for c in required if c not in frame.columns)
    if missing:
        raise ValueError(f"{name} frame lacks column(s): {', '.join(missing)}")
    exprs = []
    for col, dtype in schema.items():
        if col not in frame.columns:
            exprs.append(pl.lit(None, dtype=dtype).alias(col))
        elif isinstance(dtype, pl.Datetime):
            c = pl.col(col)
            source = frame.schema[col]
            if isinstance(source, pl.Datetime) and source.time_zone is None:  # type: ignore[attr-defined]
                c = c.dt.replace_time_zone("UTC")
            exprs.append(c.cast(dtype).alias(col))
        else:
            exprs.append(pl.col(col).cast(dtype).alias(col))
    return frame.select(exprs)


def _valid_rules(rules: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split rules into evaluable ones and ``(rule_id, reason)`` for the rest, using :func:`rule_problem`."""
    rules = _conform(rules, RULE_SCHEMA, "rules").with_columns(
        pl.col("duration_minutes").fill_null(0),
        pl.col("keep_firing_for_minutes").fill_null(0),
        pl.col("no_data_policy").fill_null(NoDataPolicy.OK.value),
    )
    bad: list[tuple[int, str]] = []
    seen: set[int] = set()
    for row in rules.iter_rows(named=True):
        rid = row["rule_id"]
        if rid in seen:
            bad.append((rid, "duplicate rule_id"))
            continue
        seen.add(rid)
        problem = rule_problem(
            row["condition"],
            row["threshold"],
            timedelta(minutes=row["duration_minutes"]),
            row["recovery_threshold"],
            timedelta(minutes=row["keep_firing_for_minutes"]),
            row["no_data_policy"],
        )
        if problem:
            bad.append((rid, problem))
    skipped = pl.DataFrame(bad, schema=SKIPPED_SCHEMA, orient="row")
    valid = rules.filter(~pl.col("rule_id").is_in(skipped["rule_id"].implode()))
    return valid, skipped.unique(maintain_order=True)


def evaluate_batch(
    rules: pl.DataFrame, states: pl.DataFrame, values: pl.DataFrame, now: datetime
) -> BatchResult:
    """Evaluate every instance of ``rules`` at ``now`` in one vectorised pass (same result as :func:`step`).

    ``rules`` has :data:`RULE_SCHEMA` columns (the table's minutes columns); ``states`` the previous
    :data:`STATE_SCHEMA` rows (may be empty); ``values`` one :data:`VALUE_SCHEMA` row per (rule, component)
    that has data now — a null value, or an instance in ``states`` without a row, is *no data*. The
    returned states cover the instances of valid rules only; invalid rules come back in ``skipped``.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    valid, skipped = _valid_rules(rules)
    states = _conform(states, STATE_SCHEMA, "states")
    values = _conform(values, VALUE_SCHEMA, "values")

    keys = ["rule_id", "component"]
    for name, frame in (("values", values), ("states", states)):
        if frame.height and frame.select(pl.struct(keys).n_unique()).item() != frame.height:
            raise ValueError(f"{name} has more than one row for some (rule_id, component)")
    df = (
        values.join(states, on=keys, how="full", coalesce=True)
        .join(valid, on="rule_id", how="inner")
        .with_columns(pl.col("state").fill_null(AlertState.INACTIVE.value))
    )
    now_lit = pl.lit(now).cast(_TS)
    now_us = pl.lit(_epoch_us(now), dtype=pl.Int64)

    value, state = pl.col("value"), pl.col("state")
    firing, inactive = state == AlertState.FIRING.value, state == AlertState.INACTIVE.value
    policy = pl.col("no_data_policy")
    threshold = (
        pl.when(firing & pl.col("recovery_threshold").is_not_null())
        .then(pl.col("recovery_threshold"))
        .otherwise(pl.col("threshold"))
    )
    op = pl.col("condition")
    # polars orders NaN above every number and equal to itself; PromQL (IEEE) makes NaN fail all but !=.
    compared = (
        pl.when(value.is_nan())
        .then(op == Condition.NE.value)
        .when(op == ">")
        .then(value > threshold)
        .when(op == ">=")
        .then(value >= threshold)
        .when(op == "<")
        .then(value < threshold)
        .when(op == "<=")
        .then(value <= threshold)
        .when(op == "=")
        .then(value == threshold)
        .otherwise(value != threshold)
    )
    has_data = value.is_not_null()
    df = df.with_columns(
        holds=pl.when(has_data).then(compared).otherwise(policy == NoDataPolicy.ALERT.value),
        frozen=~has_data & (policy == NoDataPolicy.KEEP_LAST.value),
    )

    holds, frozen = pl.col("holds"), pl.col("frozen")
    active_at = pl.when(inactive | pl.col("active_at").is_null()).then(now_lit).otherwise(pl.col("active_at"))
    kfs = pl.coalesce(pl.col("keep_firing_since"), now_lit)
    kff_us = pl.col("keep_firing_for_minutes") * _US_PER_MINUTE
    keep = (kff_us > 0) & ((now_us - kfs.dt.epoch("us")) < kff_us)
    due = (now_us - active_at.dt.epoch("us")) >= pl.col("duration_minutes") * _US_PER_MINUTE
    df = df.with_columns(
        new_active_at=active_at,
        promote=holds & ~firing & due,
        keep=~holds & firing & keep,
        resolve=~holds & firing & ~keep,
    )
    promote, kept, resolve = pl.col("promote"), pl.col("keep"), pl.col("resolve")
    live = ~frozen
    null_ts = pl.lit(None, dtype=_TS)

    new_state = (
        pl.when(frozen)
        .then(state)
        .when(holds & (firing | promote))
        .then(pl.lit(AlertState.FIRING.value))
        .when(holds)
        .then(pl.lit(AlertState.PENDING.value))
        .when(kept)
        .then(pl.lit(AlertState.FIRING.value))
        .otherwise(pl.lit(AlertState.INACTIVE.value))
    )
    out = df.with_columns(
        pl.when(frozen)
        .then(pl.col("active_at"))
        .when(holds)
        .then(pl.col("new_active_at"))
        .when(kept)
        .then(pl.col("active_at"))
        .otherwise(null_ts)
        .alias("active_at_new"),
        pl.when(frozen)
        .then(pl.col("fired_at"))
        .when(promote)
        .then(now_lit)
        .when((holds & firing) | kept)
        .then(pl.col("fired_at"))
        .otherwise(null_ts)
        .alias("fired_at_new"),
        pl.when(live & holds).then(now_lit).otherwise(pl.col("last_true_at")).alias("last_true_at_new"),
        pl.when(frozen)
        .then(pl.col("keep_firing_since"))
        .when(kept)
        .then(kfs)
        .otherwise(null_ts)
        .alias("keep_firing_since_new"),
        pl.coalesce(value, pl.col("last_value")).alias("last_value_new"),
        new_state.alias("state_new"),
    )

    new_states = out.select(
        "rule_id",
        "component",
        pl.col("state_new").alias("state"),
        pl.col("active_at_new").alias("active_at"),
        pl.col("fired_at_new").alias("fired_at"),
        pl.col("last_true_at_new").alias("last_true_at"),
        pl.col("keep_firing_since_new").alias("keep_firing_since"),
        pl.col("last_value_new").alias("last_value"),
        now_lit.alias("last_evaluated_at"),
    ).sort(keys)
    events = (
        out.filter(live & (promote | resolve))
        .select(
            "rule_id",
            "component",
            pl.when(promote)
            .then(pl.lit(EventKind.FIRED.value))
            .otherwise(pl.lit(EventKind.RESOLVED.value))
            .alias("kind"),
            now_lit.alias("at"),
            value,
            pl.when(promote).then(pl.col("new_active_at")).otherwise(pl.col("active_at")).alias("active_at"),
            pl.when(promote).then(now_lit).otherwise(pl.col("fired_at")).alias("fired_at"),
        )
        .sort(keys)
    )
    return BatchResult(new_states.cast(STATE_SCHEMA), events.cast(EVENT_SCHEMA), skipped)


def _epoch_us(ts: datetime) -> int:
    """Exact integer microseconds since the epoch of an aware datetime (no float rounding)."""
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
