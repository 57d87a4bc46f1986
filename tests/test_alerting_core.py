"""Table-driven tests of the alert state machine: series in, state/firing timeline out.

Series notation: one evaluation per minute, values separated by spaces, ``_`` = no data, ``nan`` = NaN.
State notation: one character per evaluation after it ran: ``.`` inactive, ``p`` pending, ``F`` firing.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from autopilot_pipeline.alerting.state_machine import (
    STATE_SCHEMA,
    AlertState,
    Event,
    EventKind,
    InstanceState,
    NoDataPolicy,
    Rule,
    evaluate_batch,
    firing_intervals,
    rule_problem,
    step,
    timeline,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
_CHAR = {AlertState.INACTIVE: ".", AlertState.PENDING: "p", AlertState.FIRING: "F"}


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def parse(series: str) -> list[tuple[datetime, float | None]]:
    return [(at(i), None if tok == "_" else float(tok)) for i, tok in enumerate(series.split())]


def states(steps) -> str:
    return "".join(_CHAR[s.state] for s in steps)


def rule(cond: str, thr: float, dur: int = 0, rec: float | None = None, kff: int = 0, nd: str = "ok") -> Rule:
    return Rule(cond, thr, timedelta(minutes=dur), rec, timedelta(minutes=kff), nd)  # type: ignore[arg-type]


# (name, rule, series, expected states, expected firing intervals as (start, end|None) minutes)
CASES = [
    # Pending, then firing once now - active_at >= for (FACTS.md section 4: drops at 2m, for 5m -> fires 7m).
    ("pending_then_firing", rule("<", 95, 5), "99 99 90 90 90 90 90 90 90 90", "..pppppFFF", [(7, None)]),
    ("fires_and_resolves", rule("<", 95, 3), "99 90 90 90 90 99", ".pppF.", [(4, 5)]),
    # A false evaluation while pending loses all progress.
    ("pending_reset", rule("<", 95, 3), "99 90 90 99 90 90 90 90", ".pp.pppF", [(7, None)]),
    ("duration_zero_fires_at_once", rule("<", 95), "99 90 99 90", ".F.F", [(1, 2), (3, None)]),
    ("resolves_at_first_false", rule(">", 10), "5 11 12 9 11", ".FF.F", [(1, 3), (4, None)]),
    ("boundary_ge", rule(">=", 10, 1), "10 10 9.99 10", "pF.p", [(1, 2)]),
    ("boundary_le", rule("<=", 10, 1), "10 10 10.01", "pF.", [(1, 2)]),
    ("equal", rule("=", 3), "3 3 2 3", "FF.F", [(0, 2), (3, None)]),
    ("not_equal", rule("!=", 0, 1), "0 1 2 0", ".pF.", [(2, 3)]),
    # Hysteresis: once firing, resolve only when the value is past the recovery threshold (>= 97 here).
    ("hysteresis_holds", rule("<", 95, 0, rec=97), "99 94 96 96 97 94 96", ".FFF.FF", [(1, 4), (5, None)]),
    # ... and it does not make pending easier: 96 is not < 95.
    ("hysteresis_not_for_pending", rule("<", 95, 2, rec=97), "99 96 94 96 94 94 94", "..p.ppF", [(6, None)]),
    ("hysteresis_gt", rule(">", 80, 0, rec=70), "85 75 71 70 85", "FFF.F", [(0, 3), (4, None)]),
    # keep_firing_for counts from the first false evaluation (Prometheus's KeepFiringSince).
    ("keep_firing_for", rule(">", 5, 0, kff=2), "1 9 1 1 1 9 1", ".FFF.FF", [(1, 4), (5, None)]),
    ("keep_firing_interrupted", rule(">", 5, 0, kff=2), "1 9 1 9 1 1 1", ".FFFFF.", [(1, 6)]),
    ("keep_firing_not_for_pending", rule(">", 5, 2, kff=3), "9 9 1 9", "pp.p", []),
    # No data, policy ok: like an absent series in Prometheus (condition false).
    ("no_data_ok_resolves", rule(">", 5, nd="ok"), "9 _ 9", "F.F", [(0, 1), (2, None)]),
    ("no_data_ok_resets_pending", rule(">", 5, 2, nd="ok"), "9 9 _ 9 9 9", "pp.ppF", [(5, None)]),
    ("no_data_ok_keep_firing", rule(">", 5, 0, kff=1, nd="ok"), "9 _ _ 9", "FF.F", [(0, 2), (3, None)]),
    # No data, keep_last: the instance is frozen, pending progress kept, nothing resolves.
    ("no_data_keep_last_pending", rule(">", 5, 2, nd="keep_last"), "9 _ _ 9", "pppF", [(3, None)]),
    ("no_data_keep_last_firing", rule(">", 5, nd="keep_last"), "9 9 _ _ 1", "FFFF.", [(0, 4)]),
    ("no_data_keep_last_inactive", rule(">", 5, nd="keep_last"), "1 _ _ 9", "...F", [(3, None)]),
    # No data, alert: a missing value counts as the condition being true.
    ("no_data_alert", rule(">", 5, 2, nd="alert"), "1 _ _ _ 1", ".ppF.", [(3, 4)]),
    # NaN compares like IEEE/PromQL: false for everything except !=.
    ("nan_gt", rule(">", 5), "nan 9 nan", ".F.", [(1, 2)]),
    ("nan_ne", rule("!=", 5), "5 nan 5", ".F.", [(1, 2)]),
]


@pytest.mark.parametrize(("name", "r", "series", "expected", "intervals"), CASES, ids=[c[0] for c in CASES])
def test_timeline(name: str, r: Rule, series: str, expected: str, intervals: list) -> None:
    steps = timeline(parse(series), r)
    assert states(steps) == expected
    want = [(at(a), None if b is None else at(b)) for a, b in intervals]
    assert firing_intervals(steps) == want


def test_events_carry_values_and_times() -> None:
    steps = timeline(parse("99 90 80 99"), rule("<", 95, 1))
    events = [e for s in steps for e in s.events]
    assert events == [
        Event(EventKind.FIRED, at(2), 80.0, at(1), at(2)),
        Event(EventKind.RESOLVED, at(3), 99.0, at(1), at(2)),
    ]


def test_no_data_alert_event_has_no_value() -> None:
    (fired,) = [e for s in timeline(parse("1 _"), rule(">", 5, nd="alert")) for e in s.events]
    assert fired.kind is EventKind.FIRED and fired.value is None


def test_state_fields_track_prometheus_bookkeeping() -> None:
    r = rule(">", 5, 1, kff=2)
    s, _ = step(InstanceState(), 9, at(0), r)
    assert (s.state, s.active_at, s.fired_at, s.last_true_at) == (AlertState.PENDING, at(0), None, at(0))
    s, _ = step(s, 9, at(1), r)
    assert (s.state, s.active_at, s.fired_at) == (AlertState.FIRING, at(0), at(1))
    s, _ = step(s, 1, at(2), r)
    assert (s.state, s.keep_firing_since, s.last_true_at) == (AlertState.FIRING, at(2), at(1))
    assert s.last_value == 1
    s, ev = step(s, 1, at(4), r)
    assert s.state is AlertState.INACTIVE and s.active_at is None and s.keep_firing_since is None
    assert [e.kind for e in ev] == [EventKind.RESOLVED] and s.last_evaluated_at == at(4)


def test_state_accepts_table_text() -> None:
    restored = InstanceState(state="pending", active_at=at(0))  # type: ignore[arg-type]
    assert restored.state is AlertState.PENDING
    assert step(restored, 9, at(2), rule(">", 5, 2))[0].state is AlertState.FIRING


def test_restart_from_saved_state_continues_identically() -> None:
    """The state is everything: replaying in two halves (a restart) equals one replay, no re-fire."""
    r = rule("<", 95, 3, rec=97, kff=2)
    series = parse("99 90 90 90 90 96 96 98 98 90 90 90 90 99")
    whole = timeline(series, r)
    for cut in range(1, len(series)):
        first = timeline(series[:cut], r)
        saved = InstanceState()
        for t, v in series[:cut]:
            saved, _ = step(saved, v, t, r)
        assert first + timeline(series[cut:], r, initial=saved) == whole


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"condition": "~", "threshold": 1}, "unknown condition"),
        ({"condition": ">", "threshold": float("nan")}, "threshold must be a finite number"),
        ({"condition": ">", "threshold": 1, "duration": timedelta(minutes=-1)}, "duration must be >= 0"),
        ({"condition": ">", "threshold": 1, "keep_firing_for": timedelta(-1)}, "keep_firing_for"),
        ({"condition": ">", "threshold": 1, "no_data": "panic"}, "no-data policy"),
        ({"condition": ">", "threshold": 80, "recovery_threshold": 90}, "must be <= 80"),
        ({"condition": "<", "threshold": 95, "recovery_threshold": 90}, "must be >= 95"),
        ({"condition": "=", "threshold": 1, "recovery_threshold": 1}, "ordering condition"),
    ],
)
def test_invalid_rules_are_rejected(kwargs: dict, fragment: str) -> None:
    kwargs = {"duration": timedelta(0), **kwargs}
    assert fragment in (rule_problem(**kwargs) or "")
    with pytest.raises(ValueError, match=fragment.split()[0]):
        Rule(**kwargs)


def test_rule_from_row_reads_table_columns() -> None:
    row = {
        "condition": "<",
        "threshold": 95,
        "duration_minutes": 5,
        "recovery_threshold": 97,
        "keep_firing_for_minutes": 2,
        "no_data_policy": "keep_last",
    }
    assert Rule.from_row(row) == Rule("<", 95, timedelta(minutes=5), 97, timedelta(minutes=2), "keep_last")  # type: ignore[arg-type]
    minimal = Rule.from_row({"condition": ">", "threshold": 0})
    assert (minimal.duration, minimal.no_data) == (timedelta(0), NoDataPolicy.OK)


# ---------------------------------------------------------------------------------------------------
# The batch evaluator must be the same machine as `step`, instance by instance.


def _random_rules(rng: random.Random, n: int) -> pl.DataFrame:
    rows = []
    for rid in range(1, n + 1):
        cond = rng.choice([">", ">=", "<", "<=", "=", "!="])
        thr = float(rng.randint(2, 8))
        rec = None
        if cond in ("<", "<=", ">", ">=") and rng.random() < 0.4:
            rec = thr + rng.choice([0, 1, 2]) * (1 if cond.startswith("<") else -1)
        rows.append(
            {
                "rule_id": rid,
                "condition": cond,
                "threshold": thr,
                "duration_minutes": rng.choice([0, 0, 1, 2, 3]),
                "recovery_threshold": rec,
                "keep_firing_for_minutes": rng.choice([0, 0, 1, 2]),
                "no_data_policy": rng.choice(["ok", "keep_last", "alert"]),
            }
        )
    return pl.DataFrame(rows)


def _state_row(rid: int, comp: str, s: InstanceState) -> dict:
    return {
        "rule_id": rid,
        "component": comp,
        "state": s.state.value,
        "active_at": s.active_at,
        "fired_at": s.fired_at,
        "last_true_at": s.last_true_at,
        "keep_firing_since": s.keep_firing_since,
        "last_value": s.last_value,
        "last_evaluated_at": s.last_evaluated_at,
    }


def _same_float(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and a != a and b != b)


def test_batch_matches_step_on_random_instances() -> None:
    rng = random.Random(20260105)
    rules = _random_rules(rng, 60)
    parsed = {r["rule_id"]: Rule.from_row(r) for r in rules.iter_rows(named=True)}
    components = [f"c{i}" for i in range(6)]
    scalar: dict[tuple[int, str], InstanceState] = {}
    states = pl.DataFrame(schema=STATE_SCHEMA)
    kinds: list[str] = []
    for minute in range(40):
        now = at(minute)
        rows = []
        for rid in parsed:
            for comp in components:
                roll = rng.random()
                if roll < 0.12:
                    continue  # no row at all: no data for a known instance, nothing for a new one
                value = None if roll < 0.2 else float("nan") if roll < 0.23 else float(rng.randint(0, 10))
                rows.append({"rule_id": rid, "component": comp, "value": value})
        values = pl.DataFrame(rows, schema={"rule_id": pl.Int64, "component": pl.String, "value": pl.Float64})
        result = evaluate_batch(rules, states, values, now)

        seen = {(r["rule_id"], r["component"]): r["value"] for r in rows}
        expected_events = []
        for key in sorted(set(seen) | set(scalar)):
            new, events = step(scalar.get(key, InstanceState()), seen.get(key), now, parsed[key[0]])
            scalar[key] = new
            expected_events += [(*key, e.kind.value, e.at, e.value, e.active_at, e.fired_at) for e in events]

        got = {(r["rule_id"], r["component"]): r for r in result.states.iter_rows(named=True)}
        assert set(got) == set(scalar)
        for key, s in scalar.items():
            want = _state_row(*key, s)
            row = got[key]
            assert _same_float(row.pop("last_value"), want.pop("last_value")), key
            assert row == want, (minute, key)
        got_events = result.events.rows()
        assert len(got_events) == len(expected_events)
        for g, w in zip(got_events, expected_events, strict=True):
            assert g[:4] == w[:4] and g[5:] == w[5:] and _same_float(g[4], w[4])
        states = result.states
        kinds += result.events["kind"].to_list()
    assert result.skipped.height == 0
    assert kinds.count("fired") > 100 and kinds.count("resolved") > 100


def test_batch_skips_bad_rules_and_evaluates_the_rest() -> None:
    rules = pl.DataFrame(
        {
            "rule_id": [1, 2, 3, 4, 5, 5],
            "condition": [">", "~", ">", "<", "=", ">"],
            "threshold": [5.0, 1.0, 1.0, 95.0, 1.0, 1.0],
            "duration_minutes": [0, 0, -1, 0, 0, 0],
            "recovery_threshold": [None, None, None, 90.0, None, None],
        }
    )
    values = pl.DataFrame({"rule_id": [1, 2, 3, 4, 5], "component": ["a"] * 5, "value": [9.0] * 5})
    result = evaluate_batch(rules, pl.DataFrame(schema=STATE_SCHEMA), values, at(0))
    reasons = dict(result.skipped.rows())
    assert set(reasons) == {2, 3, 4, 5}
    assert "unknown condition" in reasons[2] and "duration" in reasons[3] and "must be >=" in reasons[4]
    assert reasons[5] == "duplicate rule_id"
    assert result.states.select("rule_id", "state").rows() == [(1, "firing")]
    assert result.events.select("rule_id", "component", "kind").rows() == [(1, "a", "fired")]


def test_batch_requires_aware_now_and_columns() -> None:
    rules = pl.DataFrame({"rule_id": [1], "condition": [">"], "threshold": [1.0]})
    values = pl.DataFrame({"rule_id": [1], "component": ["a"], "value": [2.0]})
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate_batch(rules, pl.DataFrame(schema=STATE_SCHEMA), values, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="component"):
        evaluate_batch(rules, pl.DataFrame(schema=STATE_SCHEMA), values.drop("component"), at(0))
    with pytest.raises(ValueError, match="more than one row"):
        evaluate_batch(rules, pl.DataFrame(schema=STATE_SCHEMA), pl.concat([values, values]), at(0))


def test_batch_accepts_naive_utc_state_timestamps() -> None:
    """Frames read without a time zone are taken as UTC rather than failing the evaluation."""
    rules = pl.DataFrame({"rule_id": [1], "condition": [">"], "threshold": [1.0], "duration_minutes": [2]})
    naive = pl.DataFrame(
        {
            "rule_id": [1],
            "component": ["a"],
            "state": ["pending"],
            "active_at": [datetime(2026, 1, 5, 12, 0)],
        }
    )
    values = pl.DataFrame({"rule_id": [1], "component": ["a"], "value": [2.0]})
    result = evaluate_batch(rules, naive, values, at(2))
    assert result.states["state"].to_list() == ["firing"]
    assert result.events["active_at"].to_list() == [at(0)]
