"""The table-driven alerting engine: ``evaluate_alert_rules``, ``fire_alert`` and ``resolve_alert`` (the
seed's function names) over ``automation.alert_rules`` / ``alert_state`` / ``alert_history``.

One evaluation at ``now``, in one transaction under an advisory lock:

1. read the rules; skip (with a logged reason) rules on an unknown metric or an unknown target, and
   invalid ones (the state machine's :func:`rule_problem`);
2. per monitored target (a rule with ``target`` NULL applies to every one), read the metric windows its
   rules need from that target's database and compute each (rule, component) value with the catalog;
3. run the Prometheus-exact state machine (:func:`evaluate_batch`) from the target's stored states, so an
   instance is (rule, target, component); a target that cannot be read keeps its states untouched;
4. write the new states, open a history row per fired instance and close one per resolved instance,
   recording whether a suppression was in force; log the evaluation.

Notifications are not sent here (``alerting.notifications`` does that after the commit), so Slack being
down can never delay or roll back an evaluation. Everything an instance needs survives in Postgres:
restarting between two evaluations changes nothing.

Stored instances are those pending or firing, plus inactive ones of ``no_data_policy = 'alert'`` rules
(which must remember a component to alert on its silence). Like Prometheus, other inactive instances are
not kept: an inactive instance carries nothing the next evaluation needs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl
import psycopg
from psycopg.pq import TransactionStatus

from autopilot_pipeline.alerting import metric_catalog as catalog
from autopilot_pipeline.alerting import state_machine as sm
from autopilot_pipeline.alerting import store
from autopilot_pipeline.alerting import suppressions as supp
from autopilot_pipeline.alerting.state_machine import AlertState, EventKind, NoDataPolicy, evaluate_batch
from autopilot_pipeline.errors import AutopilotError, redact
from autopilot_pipeline.postgres import targets as monitored

__all__ = ["EvaluationResult", "evaluate_alert_rules", "fire_alert", "resolve_alert"]

log = logging.getLogger(__name__)

TS = pl.Datetime("us", "UTC")
SKIPPED_SCHEMA = {"rule_id": pl.Int64(), "rule": pl.String(), "reason": pl.String()}
INSTANCE_SCHEMA = {
    "rule_id": pl.Int64(),
    "rule": pl.String(),
    "severity": pl.String(),
    "target": pl.String(),
    "component": pl.String(),
    "state": pl.String(),
    "value": pl.Float64(),
    "active_at": TS,
    "fired_at": TS,
}


@dataclass(frozen=True)
class EvaluationResult:
    """What one evaluation did. ``instances`` are the pending and firing instances after it."""

    evaluated_at: datetime
    rules_evaluated: int = 0
    instances_evaluated: int = 0
    instances: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=INSTANCE_SCHEMA))
    fired: pl.DataFrame = field(default_factory=pl.DataFrame)
    resolved: pl.DataFrame = field(default_factory=pl.DataFrame)
    skipped: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SKIPPED_SCHEMA))
    notes: tuple[str, ...] = ()
    refused: str | None = None  # set when the evaluation did not run (out of time order)
    duration_ms: float = 0.0

    def count(self, state: AlertState) -> int:
        if self.instances.height == 0:
            return 0
        return self.instances.filter(pl.col("state") == state.value).height

    @property
    def firing(self) -> int:
        return self.count(AlertState.FIRING)

    @property
    def pending(self) -> int:
        return self.count(AlertState.PENDING)


def _aware(moment: datetime | None) -> datetime:
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("evaluation time must be timezone-aware")
    return moment.astimezone(UTC)


def _fmt(value: pl.Expr) -> pl.Expr:
    """A value as short text (rounded to 3 decimals, trailing zeros dropped)."""
    text = value.round(3).cast(pl.String)
    return pl.when(value.is_null()).then(pl.lit("no data")).otherwise(text.str.replace(r"\.0$", ""))


def _fired_rows(events: pl.DataFrame, rules: pl.DataFrame, active: list[supp.Suppression]) -> pl.DataFrame:
    """History rows (``store.insert_fired`` columns) for fired events, with message and suppression.

    An alert on a target other than ``default`` names it in its message and metadata."""
    if "target" not in events.columns:
        events = events.with_columns(pl.lit(store.DEFAULT_TARGET).alias("target"))
    fired = events.join(rules, on="rule_id", how="inner").join(
        _mutes(fired_keys(events), active), on=["rule_id", "target"], how="left"
    )
    elsewhere = pl.col("target") != store.DEFAULT_TARGET
    suppression_id = pl.col("suppression_id")
    message = pl.format(
        "{}: {} is {} ({} {}) on {}, pending since {}",
        pl.col("name"),
        pl.col("metric_name"),
        _fmt(pl.col("value")),
        pl.col("condition"),
        _fmt(pl.col("threshold")),
        pl.when(elsewhere)
        .then(pl.format("{} of target {}", pl.col("component"), pl.col("target")))
        .otherwise(pl.col("component")),
        pl.col("active_at").dt.strftime("%Y-%m-%d %H:%M UTC"),
    )
    described = [
        pl.col("metric_name"),
        pl.col("condition"),
        pl.col("active_at").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ"),
        pl.col("duration_minutes"),
    ]
    metadata = (
        pl.when(elsewhere)
        .then(pl.struct(*described, pl.col("target")).struct.json_encode())
        .otherwise(pl.struct(*described).struct.json_encode())
    )
    return fired.select(
        "rule_id",
        pl.col("name").alias("rule_name"),
        "target",
        "component",
        "severity",
        "value",
        "threshold",
        message.alias("message"),
        pl.col("at").alias("fired_at"),
        suppression_id.is_not_null().alias("suppressed"),
        suppression_id.alias("suppression_id"),
        metadata.alias("metadata"),
    )


def fired_keys(events: pl.DataFrame) -> pl.DataFrame:
    """The distinct (rule_id, target) pairs of ``events``."""
    return events.select(pl.col("rule_id").cast(pl.Int64), "target").unique()


def _mutes(keys: pl.DataFrame, active: list[supp.Suppression]) -> pl.DataFrame:
    """(rule_id, target, suppression_id) of the pairs in ``keys`` muted by an ``active`` window."""
    rows = [
        (rid, target, s.id)
        for rid, target in keys.iter_rows()
        if (s := supp.muting(active, rid, target)) is not None
    ]
    return pl.DataFrame(
        rows, schema={"rule_id": pl.Int64, "target": pl.String, "suppression_id": pl.Int64}, orient="row"
    )


def _resolved_rows(
    events: pl.DataFrame, active: list[supp.Suppression], resolution: str | None = None
) -> pl.DataFrame:
    reason = (
        pl.lit(resolution)
        if resolution
        else (
            pl.when(pl.col("value").is_null()).then(pl.lit("no data")).otherwise(pl.lit("condition cleared"))
        )
    )
    if "target" not in events.columns:
        events = events.with_columns(pl.lit(store.DEFAULT_TARGET).alias("target"))
    mutes = _mutes(fired_keys(events), active)
    return events.join(mutes, on=["rule_id", "target"], how="left").select(
        "rule_id",
        "target",
        "component",
        pl.col("at").alias("resolved_at"),
        pl.col("value").alias("resolved_value"),
        reason.alias("resolution"),
        pl.col("suppression_id").is_not_null().alias("resolved_suppressed"),
    )


DURABLE = ["state", "active_at", "fired_at", "keep_firing_since", "last_notified_at"]


def state_changes(old: pl.DataFrame, new: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(removed keys, rows to write)`` turning the stored instances ``old`` into ``new``.

    A row is written when it is new or one of :data:`DURABLE` changed: everything the state machine reads
    back. ``last_value``, ``last_true_at`` and ``last_evaluated_at`` are informational and written with
    those rows only, so a steady incident costs no write per evaluation.
    """
    keys = ["rule_id", "target", "component"]
    previous = old.select(*keys, *(pl.col(c).alias(f"{c}_old") for c in DURABLE))
    joined = new.join(previous, on=keys, how="left")
    same = pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}_old")) for c in DURABLE)
    upserts = joined.filter(pl.col("state_old").is_null() | ~same).select(new.columns)
    removed = old.select(keys).join(new.select(keys), on=keys, how="anti")
    return removed, upserts


#: Opens the database of a (non-default) monitored target by name.
INERROR = TransactionStatus.INERROR
SourceOpener = Callable[[psycopg.Connection, str], AbstractContextManager[psycopg.Connection]]


@contextmanager
def _open_target(conn: psycopg.Connection, name: str) -> Iterator[psycopg.Connection]:
    """The monitored database of ``name``, its URL read now from its variable or file."""
    with monitored.connect_target(monitored.get_target(conn, name)) as source:
        yield source


@contextmanager
def _source(conn: psycopg.Connection, target: str, open_source: SourceOpener) -> Iterator[psycopg.Connection]:
    """Where ``target``'s monitored rows are: this database for ``default``, otherwise its own."""
    if target == store.DEFAULT_TARGET:
        yield conn
        return
    with open_source(conn, target) as source:
        yield source


@dataclass(frozen=True)
class _TargetRun:
    """The state machine's output over every target, each frame with a ``target`` column."""

    evaluated: pl.DataFrame  # (rule_id, target) evaluated
    states: pl.DataFrame
    events: pl.DataFrame
    skipped: pl.DataFrame  # (rule_id, reason)
    notes: list[str]


def _evaluate_targets(
    conn: psycopg.Connection,
    candidates: pl.DataFrame,
    scopes: pl.DataFrame,
    old_states: pl.DataFrame,
    now: datetime,
    open_source: SourceOpener,
) -> _TargetRun:
    """Run the state machine once per target over the rules that apply to it and that target's windows.

    Each target is its own batch, so the same rule on two targets gives independent instances. A target
    whose database cannot be opened skips its rules (logged reason) and keeps its stored states unchanged.
    """
    evaluated, states, events, skipped, notes = [], [], [], [], []
    pair_schema = {"rule_id": pl.Int64(), "target": pl.String()}
    for target in sorted(scopes["target"].unique().to_list(), key=lambda t: (t != store.DEFAULT_TARGET, t)):
        rule_ids = scopes.filter(pl.col("target") == target)["rule_id"]
        rules = candidates.filter(pl.col("rule_id").is_in(rule_ids.implode()))
        unreadable = rules  # every rule of the target is skipped if its database cannot be read
        try:
            with _source(conn, target, open_source) as source:
                # a custom metric is known per target: its samples live in the target's database
                custom = catalog.custom_names(rules["metric_name"].to_list())
                unknown = sorted(set(custom) - store.sampled_metric_names(source, custom))
                where = "" if target == store.DEFAULT_TARGET else f" on target '{target}'"
                unknown_skips = rules.filter(pl.col("metric_name").is_in(unknown)).select(
                    "rule_id",
                    pl.format(
                        "unknown metric '{}'" + where + " (not built in, and no automation.metric_samples "
                        "rows use it)",
                        pl.col("metric_name"),
                    ).alias("reason"),
                )
                rules = rules.filter(~pl.col("metric_name").is_in(unknown))
                names = rules["metric_name"].unique().to_list()
                needed = catalog.sources_for(names)
                own = target == store.DEFAULT_TARGET
                inputs = store.read_metric_inputs(conn, needed, now, target, None if own else source)
        except AutopilotError as exc:  # its one line names the target (unset variable, unreachable, ...)
            skipped.append(unreadable.select("rule_id", pl.lit(str(exc)).alias("reason")))
            continue
        except Exception as exc:  # the target's database failed mid-read (went away, lacks a table), through
            # psycopg or the bulk reader's driver: that target waits, the others are evaluated
            if target == store.DEFAULT_TARGET or conn.info.transaction_status == INERROR:
                raise  # our own database failed: the evaluation cannot go on
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            reason = f"target '{target}' could not be read: {redact(first)}"
            skipped.append(unreadable.select("rule_id", pl.lit(reason).alias("reason")))
            continue
        skipped.append(unknown_skips)
        if catalog.Source.PREDICTIONS in needed and inputs.predictions is None:
            notes.append(
                "failure_probability has no data: the AI-ops table analytics.failure_predictions "
                "does not exist yet"
            )
        values = catalog.rule_values(rules, catalog.metric_values(names, inputs))
        mine = old_states.filter(pl.col("target") == target).drop("target")
        result = evaluate_batch(rules, mine, values, now)
        tag = pl.lit(target).alias("target")
        states.append(result.states.with_columns(tag))
        events.append(result.events.with_columns(tag))
        skipped.append(result.skipped.select("rule_id", "reason"))
        ran = rules.filter(~pl.col("rule_id").is_in(result.skipped["rule_id"].implode()))
        evaluated.append(ran.select("rule_id", tag))
    with_target = {"target": pl.String()}
    return _TargetRun(
        evaluated=pl.concat([pl.DataFrame(schema=pair_schema), *evaluated]),
        states=pl.concat([pl.DataFrame(schema={**sm.STATE_SCHEMA, **with_target}), *states]),
        events=pl.concat([pl.DataFrame(schema={**sm.EVENT_SCHEMA, **with_target}), *events]),
        skipped=pl.concat([pl.DataFrame(schema=sm.SKIPPED_SCHEMA), *skipped]),
        notes=list(dict.fromkeys(notes)),
    )


def _skip(rules: pl.DataFrame, reasons: pl.DataFrame) -> pl.DataFrame:
    """``(rule_id, reason)`` with the rule names attached."""
    return reasons.join(
        rules.select("rule_id", pl.col("name").alias("rule")), on="rule_id", how="left"
    ).select(list(SKIPPED_SCHEMA))


def evaluate_alert_rules(
    conn: psycopg.Connection,
    now: datetime | None = None,
    logger: logging.Logger | None = None,
    open_source: SourceOpener | None = None,
) -> EvaluationResult:
    """Evaluate every enabled rule at ``now`` (default: the current time) and persist the outcome.

    ``conn`` must be in autocommit mode (the evaluation opens its own transaction). An evaluation at or
    before the last one is refused (``refused`` says why): the state machine needs time order.
    ``open_source`` opens a non-default target's database (default: its URL from ``automation.targets``).
    """
    logger = logger or log
    now = _aware(now)
    started = time.perf_counter()
    with conn.transaction():
        store.lock_engine(conn)
        last = store.last_evaluated_at(conn)
        if last is not None and now <= last:
            reason = (
                f"not evaluated: {now:%Y-%m-%d %H:%M:%S} is not after the last evaluation "
                f"({last:%Y-%m-%d %H:%M:%S})"
            )
            return EvaluationResult(evaluated_at=now, refused=reason)

        rules = store.read_rules(conn)
        enabled = rules.filter(pl.col("enabled"))
        disabled_ids = rules.filter(~pl.col("enabled"))["rule_id"].to_list()

        scopes, unknown_rules = store.rule_scopes(conn, enabled["rule_id"].to_list())
        candidates = enabled.filter(~pl.col("rule_id").is_in(unknown_rules["rule_id"].implode()))
        scopes = scopes.join(candidates.select("rule_id"), on="rule_id", how="semi")
        old_states = store.read_states(conn)
        run = _evaluate_targets(conn, candidates, scopes, old_states, now, open_source or _open_target)
        notes = run.notes
        skipped = _skip(rules, pl.concat([unknown_rules, run.skipped]).unique(maintain_order=True))
        evaluated = run.evaluated  # (rule_id, target) pairs evaluated this time
        evaluated_ids = evaluated["rule_id"].unique()

        alert_policy = candidates.filter(pl.col("no_data_policy") == NoDataPolicy.ALERT.value)["rule_id"]
        keys = ["rule_id", "target", "component"]
        kept = (
            run.states.filter(
                (pl.col("state") != AlertState.INACTIVE.value)
                | pl.col("rule_id").is_in(alert_policy.implode())
            )
            .join(
                old_states.select(*keys, pl.col("state").alias("old_state"), "last_notified_at"),
                on=keys,
                how="left",
            )
            .with_columns(
                pl.when((pl.col("state") == "firing") & (pl.col("old_state") == "firing"))
                .then(pl.col("last_notified_at"))
                .otherwise(None)
                .alias("last_notified_at")
            )
        )
        active_suppressions = supp.active(store.read_suppressions(conn), now)
        events = run.events
        fired = _fired_rows(
            events.filter(pl.col("kind") == EventKind.FIRED.value), candidates, active_suppressions
        )
        resolved = _resolved_rows(
            events.filter(pl.col("kind") == EventKind.RESOLVED.value), active_suppressions
        )

        removed, upserts = state_changes(
            old_states.join(evaluated, on=["rule_id", "target"], how="semi"), kept.select(old_states.columns)
        )
        store.apply_state_changes(conn, removed, upserts)
        store.insert_fired(conn, fired)
        store.close_resolved(conn, resolved)
        store.close_orphans(conn, now, disabled_ids)
        store.close_out_of_scope(conn, now, scopes)

        instances = (
            kept.filter(pl.col("state") != AlertState.INACTIVE.value)
            .join(candidates.select("rule_id", pl.col("name").alias("rule"), "severity"), on="rule_id")
            .select(
                "rule_id",
                "rule",
                "severity",
                "target",
                "component",
                "state",
                pl.col("last_value").alias("value"),
                "active_at",
                "fired_at",
            )
            .sort("state", "rule", "target", "component")
        )
        duration_ms = (time.perf_counter() - started) * 1000
        outcome = EvaluationResult(
            evaluated_at=now,
            rules_evaluated=len(evaluated_ids),
            instances_evaluated=run.states.height,
            instances=instances,
            fired=fired,
            resolved=resolved,
            skipped=skipped,
            notes=tuple(notes),
            duration_ms=duration_ms,
        )
        counts = {
            "rules_evaluated": outcome.rules_evaluated,
            "rules_skipped": skipped.height,
            "instances": outcome.instances_evaluated,
            "pending": outcome.pending,
            "firing": outcome.firing,
            "fired": fired.height,
            "resolved": resolved.height,
        }
        store.log_evaluation(conn, now, counts, skipped.to_dicts(), duration_ms)
    for row in skipped.iter_rows(named=True):
        logger.warning(f"alert rule {row['rule_id']} ({row['rule']}) skipped: {row['reason']}")
    for note in notes:
        logger.info(note)
    return outcome


def _find_rule(conn: psycopg.Connection, rule: int | str) -> pl.DataFrame:
    rules = store.read_rules(conn)
    found = rules.filter(pl.col("rule_id") == rule if isinstance(rule, int) else pl.col("name") == rule)
    if found.height != 1:
        raise LookupError(f"no alert rule {rule!r}")
    return found


def fire_alert(
    conn: psycopg.Connection,
    rule: int | str,
    component: str,
    value: float | None = None,
    at: datetime | None = None,
    target: str = store.DEFAULT_TARGET,
) -> int:
    """Put an instance into ``firing`` now (e.g. from an external check) and open its history row.

    The engine then treats it like any firing instance: it resolves at the first evaluation where the
    rule's condition is false. Returns the id of the open ``alert_history`` row (the existing one if the
    instance was already firing). The notifier announces it like any other firing.
    """
    at = _aware(at)
    with conn.transaction():
        store.lock_engine(conn)
        rules = _find_rule(conn, rule)
        rule_id = int(rules["rule_id"][0])
        conn.execute(
            "INSERT INTO automation.alert_state (rule_id, target, component, state, active_at, fired_at, "
            "last_true_at, "
            "last_value, last_evaluated_at) VALUES (%(r)s, %(t)s, %(c)s, 'firing', %(at)s, %(at)s, %(at)s, "
            "%(v)s, %(at)s) "
            "ON CONFLICT (rule_id, target, component) DO UPDATE SET state = 'firing', "
            "active_at = coalesce(automation.alert_state.active_at, excluded.active_at), "
            "fired_at = CASE WHEN automation.alert_state.state = 'firing' THEN "
            "automation.alert_state.fired_at "
            "ELSE excluded.fired_at END, keep_firing_since = NULL, last_true_at = excluded.last_true_at, "
            "last_value = coalesce(excluded.last_value, automation.alert_state.last_value)",
            {"r": rule_id, "t": target, "c": component, "at": at, "v": value},
        )
        events = _manual_event(rule_id, target, component, at, value).with_columns(active_at=pl.col("at"))
        active = supp.active(store.read_suppressions(conn), at)
        store.insert_fired(conn, _fired_rows(events, rules, active))
        row = conn.execute(
            "SELECT id FROM automation.alert_history WHERE rule_id = %s AND target = %s AND component = %s "
            "AND status = 'firing'",
            (rule_id, target, component),
        ).fetchone()
    assert row is not None
    return int(row[0])


def resolve_alert(
    conn: psycopg.Connection,
    alert_id: int | None = None,
    *,
    rule: int | str | None = None,
    component: str | None = None,
    at: datetime | None = None,
    value: float | None = None,
    resolution: str = "resolved manually",
    target: str = store.DEFAULT_TARGET,
) -> bool:
    """Resolve a firing alert (by history id, or by rule and component) and reset its instance.

    If the condition still holds, the next evaluation starts a new pending period, as after any
    resolution. Returns False when nothing was firing.
    """
    at = _aware(at)
    with conn.transaction():
        store.lock_engine(conn)
        if alert_id is not None:
            row = conn.execute(
                "SELECT rule_id, target, component FROM automation.alert_history WHERE id = %s AND status = "
                "'firing'",
                (alert_id,),
            ).fetchone()
        elif rule is not None and component is not None:
            rule_id = int(_find_rule(conn, rule)["rule_id"][0])
            row = conn.execute(
                "SELECT rule_id, target, component FROM automation.alert_history "
                "WHERE rule_id = %s AND target = %s AND component = %s AND status = 'firing'",
                (rule_id, target, component),
            ).fetchone()
        else:
            raise ValueError("give alert_id, or rule and component")
        if row is None:
            return False
        rule_id, on_target, comp = row
        events = _manual_event(rule_id, on_target, comp, at, value)
        active = supp.active(store.read_suppressions(conn), at)
        store.close_resolved(conn, _resolved_rows(events, active, resolution))
        conn.execute(
            "DELETE FROM automation.alert_state WHERE rule_id = %s AND target = %s AND component = %s",
            (rule_id, on_target, comp),
        )
    return True


def _manual_event(
    rule_id: int, target: str, component: str, at: datetime, value: float | None
) -> pl.DataFrame:
    """One hand-made event (a manual fire or resolve) in the shape the fired/resolved rows are built from."""
    return pl.DataFrame(
        {"rule_id": [rule_id], "target": [target], "component": [component], "at": [at], "value": [value]},
        schema={
            "rule_id": pl.Int64,
            "target": pl.String,
            "component": pl.String,
            "at": TS,
            "value": pl.Float64,
        },
    )
