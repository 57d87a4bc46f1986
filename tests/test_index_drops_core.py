"""The pure rules of foreign-key indexes, drop proposals and realized savings (issue 13, points 4, 6, 7)."""

from datetime import UTC, datetime, timedelta

import pytest

from autopilot_pipeline.profiling.drops import (
    Observation,
    TableWrites,
    drop_findings,
    duplicate_index_findings,
    unused_index_findings,
)
from autopilot_pipeline.profiling.foreign_keys import (
    ForeignKey,
    ForeignKeyEvidence,
    ServedQuery,
    covering_fk_index,
    fk_protected_indexes,
    foreign_key_findings,
)
from autopilot_pipeline.profiling.index_selection import btree_size
from autopilot_pipeline.profiling.indexes import ExistingIndex, IndexCandidate
from autopilot_pipeline.profiling.savings import realized_saving, savings_lines, savings_report
from autopilot_pipeline.profiling.settings import ProfilingSettings
from autopilot_pipeline.profiling.store.index_usage import StatisticsPeriod, _period_of

SETTINGS = ProfilingSettings()
NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


def ix(name: str, columns: tuple, **kw) -> ExistingIndex:
    return ExistingIndex(
        schema="s",
        table=kw.pop("table", "child"),
        name=name,
        method=kw.pop("method", "btree"),
        columns=columns,
        **kw,
    )


FK = ForeignKey("s", "child", "child_parent_fk", ("a", "b"), "s", "parent", ("x", "y"))


# --------------------------------------------------------------------------------------------- point 4


@pytest.mark.parametrize(
    ("index", "covers"),
    [
        (ix("ab", ("a", "b")), True),
        (ix("ba_c", ("b", "a", "c")), True),  # any order: the check is an equality on each column
        (ix("a_c_b", ("a", "c", "b")), False),  # b is not among the leading two
        (ix("a", ("a",)), False),
        (ix("ab_nn", ("a", "b"), predicate="((a IS NOT NULL) AND (b IS NOT NULL))"), True),
        (ix("ab_part", ("a", "b"), predicate="(a > 0)"), False),
        (ix("expr", (None, "b")), False),
        (ix("invalid", ("a", "b"), valid=False), False),
        (ix("gin", ("a", "b"), method="gin"), False),
        (ix("other_table", ("a", "b"), table="parent"), False),
    ],
)
def test_an_fk_is_covered_by_an_index_leading_with_its_columns_in_any_order(index, covers):
    assert (covering_fk_index(FK, [index]) is not None) == covers


def test_a_hash_index_covers_a_one_column_key_only():
    one = ForeignKey("s", "child", "fk1", ("a",), "s", "parent", ("x",))
    assert covering_fk_index(one, [ix("h", ("a",), method="hash")]) is not None
    assert covering_fk_index(FK, [ix("h", ("a", "b"), method="hash")]) is None


def evidence(**kw) -> ForeignKeyEvidence:
    fk = kw.pop("fk", ForeignKey("s", "child", "child_parent_fk", ("parent_id",), "s", "parent", ("id",)))
    base = {
        "child_rows": 1_000_000.0,
        "check_cost": 990.0,
        "indexed_cost": 10.0,
        "child_writes_per_day": 500.0,
    }
    return ForeignKeyEvidence(fk=fk, **{**base, **kw})


DELETE = ServedQuery("fp1", "parent_delete", 10, 100.0, "DELETE FROM s.parent WHERE id = $1", plan_cost=10.0)


def test_a_deleted_parent_gets_an_fk_index_with_its_saving_size_and_reasons():
    (rec,) = foreign_key_findings([evidence(parent_deletes=10, statements=(DELETE,))], [], SETTINGS)
    assert rec.key == IndexCandidate("s.child", ("parent_id",)).key == "missing_index:s.child(parent_id)"
    assert rec.type == "missing_index" and rec.priority == "medium"
    assert rec.action_sql == "CREATE INDEX CONCURRENTLY child_parent_id_idx ON s.child (parent_id);"
    details = rec.metadata
    # each call: 100 ms of which the RI scan is 990 / (10 + 990); the index makes it 10 / 990 of itself
    assert details["estimated_saved_ms"] == pytest.approx(10 * 100 * (980 / 990) * 990 / 1000, abs=0.1)
    assert rec.estimated_improvement_pct == pytest.approx(98.0)
    assert details["estimated_size_bytes"] == btree_size(1_000_000, [8])
    assert [s["kind"] for s in details["queries"]] == ["parent_delete", "ri_check"]
    assert details["queries"][1]["query"] == "SELECT 1 FROM ONLY s.child WHERE parent_id = $1 FOR KEY SHARE"
    assert details["index_writes_per_day"] == 500.0
    assert rec.metadata["fingerprints"] == ["fp1"] and rec.metadata["verification"] == "foreign_key"
    assert "10 parent rows deleted" in rec.description


def test_fk_index_priority_follows_the_evidence():
    high = ProfilingSettings(high_saved_ms=500.0)
    (rec,) = foreign_key_findings([evidence(parent_deletes=10, statements=(DELETE,))], [], high)
    assert rec.priority == "high"
    cascade = ForeignKey("s", "child", "fk", ("parent_id",), "s", "parent", ("id",), on_delete="c")
    (rec,) = foreign_key_findings([evidence(fk=cascade)], [], SETTINGS)
    assert rec.priority == "medium" and "ON DELETE CASCADE" in rec.description
    assert rec.metadata["estimated_saved_ms"] is None  # no delete seen: no number invented
    (rec,) = foreign_key_findings([evidence(parent_updates=5)], [], SETTINGS)
    assert rec.priority == "low"
    join = ServedQuery("fp2", "join", 5_000, 1.0)
    (rec,) = foreign_key_findings([evidence(statements=(join,))], [], SETTINGS)
    assert rec.priority == "medium" and "5,000 joins" in rec.description


def test_no_fk_index_without_need_on_small_children_when_covered_or_already_advised():
    assert foreign_key_findings([evidence()], [], SETTINGS) == []  # never deleted, updated or joined
    assert foreign_key_findings([evidence(child_rows=500.0, parent_deletes=10)], [], SETTINGS) == []
    covered = [ix("child_pid", ("parent_id", "created_at"))]
    assert foreign_key_findings([evidence(parent_deletes=10)], covered, SETTINGS) == []
    advised = [IndexCandidate("s.child", ("parent_id", "status"))]
    assert foreign_key_findings([evidence(parent_deletes=10)], [], SETTINGS, advised) == []
    rare = [evidence(statements=(ServedQuery("fp2", "join", 10, 1.0),))]
    assert foreign_key_findings(rare, [], SETTINGS) == []  # 10 joins are not "frequent"


def test_indexes_serving_an_fk_are_protected():
    indexes = [ix("ba", ("b", "a")), ix("c", ("c",))]
    assert fk_protected_indexes([FK], indexes) == {"s.ba": "child_parent_fk"}


# --------------------------------------------------------------------------------------------- point 6


WRITES = {"s.child": TableWrites(1000.0, 200.0, 50.0, 10.0)}


def test_unused_indexes_need_the_minimum_observation_period_and_state_it():
    indexes = [ix("old", ("a",), scans=0, size_bytes=10 << 20), ix("young", ("b",), scans=0)]
    observed = {
        "s.old": Observation(30.0, NOW - timedelta(days=30), "statistics_reset"),
        "s.young": Observation(2.0, NOW - timedelta(days=2), "index_first_seen"),
    }
    recs = unused_index_findings(indexes, 30.0, SETTINGS, observed=observed, writes=WRITES)
    assert [r.key for r in recs] == ["unused_index:s.old"]
    (rec,) = recs
    assert "30.0 days (since the statistics reset on 2026-11-04 12:00 UTC)" in rec.description
    assert "1,200 index entries written per day on child" in rec.description
    details = rec.metadata["details"]
    assert details["observation_days"] == 30.0 and details["observation_basis"] == "statistics_reset"
    assert details["size_bytes"] == 10 << 20 and details["write_overhead"]["index_entries_per_day"] == 1200.0
    assert rec.priority == "medium"
    # the default period (no observation of ours) applies to the others; too short: nothing
    assert unused_index_findings(indexes, 3.0, SETTINGS) == []


def test_constraint_fk_and_otherwise_protected_indexes_are_never_dropped():
    indexes = [
        ix("pk", ("id",), scans=0, primary=True, unique=True, backs_constraint=True),
        ix("uniq", ("u",), scans=0, unique=True),
        ix("excl", ("r",), scans=0, method="gist", backs_constraint=True),
        ix("fk_ix", ("a", "b"), scans=0),
        ix("fk_ix_prefix", ("a",), scans=0),
        ix("replica", ("q",), scans=0),
        ix("free", ("z",), scans=0),
    ]
    protected = {**fk_protected_indexes([FK], indexes), "s.replica": "the replica identity"}
    recs = drop_findings(indexes, 30.0, SETTINGS, protected=protected)
    # the prefix of the FK index goes (the wider one still serves the check); nothing protected does
    assert {r.key for r in recs} == {"duplicate_index:s.fk_ix_prefix", "unused_index:s.free"}


def test_duplicates_carry_size_and_write_cost_and_respect_protection():
    indexes = [ix("a1", ("a",), scans=0, size_bytes=4096), ix("a2", ("a",), scans=3)]
    (rec,) = duplicate_index_findings(indexes, writes=WRITES)
    assert (
        rec.key == "duplicate_index:s.a1"
        and rec.metadata["details"]["write_overhead"]["deletes_per_day"] == 50.0
    )
    assert duplicate_index_findings(indexes, protected={"s.a1": "backs a constraint"}) == []


def test_a_short_statistics_period_states_a_count_not_a_daily_rate():
    writes = TableWrites(4800.0, 0.0, 0.0, 0.25)
    assert writes.describe("t") == "1,200 index entries written on t in 6.0 h of statistics"


def test_observation_period_is_ours_for_young_indexes_and_the_longer_one_otherwise():
    server = StatisticsPeriod(NOW - timedelta(days=40), 40.0, "statistics_reset")
    first_look = NOW - timedelta(days=10)
    old = _period_of(NOW, first_look, first_look, first_look, server)
    assert (old.days, old.basis) == (40.0, "statistics_reset")
    young_seen = NOW - timedelta(days=3)
    young = _period_of(NOW, young_seen, young_seen, first_look, server)
    assert (young.days, young.basis) == (3.0, "index_first_seen")
    short_server = StatisticsPeriod(NOW - timedelta(days=1), 1.0, "server_start")
    ours = _period_of(NOW, first_look, first_look, first_look, short_server)
    assert (ours.days, ours.basis) == (10.0, "first_snapshot")
    assert _period_of(NOW, NOW, NOW, None, server).days == 40.0  # the first look: only the server's


# --------------------------------------------------------------------------------------------- point 7


def test_realized_saving_compares_each_query_with_itself():
    before = {"q1": (100, 100 * 50.0), "q2": (100, 100 * 2.0)}
    after = {"q1": (10, 10 * 5.0), "q2": (90, 90 * 2.0)}  # the mix changed: q1 is rarer now
    r = realized_saving(before, after, min_calls=30)
    assert r.status == "measured"
    assert r.saved_ms == pytest.approx(10 * 45.0)
    assert r.saving_pct == pytest.approx(100 * 450 / (10 * 50 + 90 * 2))
    assert r.mean_ms_before == pytest.approx(26.0) and r.mean_ms_after == pytest.approx(2.3)
    assert [q["fingerprint"] for q in r.queries] == ["q1", "q2"]


def test_realized_saving_waits_for_enough_calls():
    assert realized_saving({"q": (100, 500.0)}, {"q": (5, 1.0)}, 30).status == "measuring"
    assert realized_saving({"q": (5, 500.0)}, {"q": (100, 1.0)}, 30).status == "no_baseline"
    other = realized_saving({"q": (100, 500.0)}, {"r": (100, 1.0)}, 30)
    assert other.status == "no_baseline" and other.saving_pct is None
    slower = realized_saving({"q": (100, 100.0)}, {"q": (100, 200.0)}, 30)
    assert slower.status == "measured" and slower.saving_pct == pytest.approx(-100.0)


def test_savings_report_and_lines():
    row = {
        "schema_name": "s",
        "index_name": "t_a_idx",
        "table_name": "s.t",
        "source": "auto_apply",
        "recommendation_key": "missing_index:s.t(a)",
        "applied_before": NOW,
        "fingerprints": ["q1"],
        "predicted_saving_pct": 95.0,
        "predicted_saved_ms": 1000.0,
        "realized_saving_pct": 90.04,
        "realized_saved_ms": 900.0,
        "calls_before": 100,
        "mean_ms_before": 10.0,
        "calls_after": 100,
        "mean_ms_after": 1.0,
        "status": "measured",
    }
    (item,) = savings_report([row])
    assert (
        item["index"] == "s.t_a_idx"
        and item["realizedSavingPct"] == 90.0
        and item["appliedAt"] == NOW.isoformat()
    )
    assert savings_lines([item]) == [
        "s.t_a_idx (auto_apply, 1 queries): predicted -95 %; realized -90 % (mean 10.00 -> 1.00 ms over 100 calls)"
    ]
    waiting = savings_report(
        [{**row, "status": "measuring", "realized_saving_pct": None, "predicted_saving_pct": None}]
    )
    assert savings_lines(waiting) == [
        "s.t_a_idx (auto_apply, 1 queries): no prediction; measuring (too few calls since it was applied)"
    ]


def test_of_several_indexes_serving_an_fk_the_widest_is_protected_and_the_prefix_may_go():
    indexes = [ix("a_b", ("a", "b"), scans=0), ix("b_a_c", ("b", "a", "c"), scans=0)]
    assert fk_protected_indexes([FK], indexes) == {"s.b_a_c": "child_parent_fk"}
    one = ForeignKey("s", "child", "fk1", ("a",), "s", "parent", ("x",))
    prefix = [ix("a", ("a",), scans=0), ix("a_b", ("a", "b"), scans=0)]
    protected = fk_protected_indexes([one], prefix)
    recs = drop_findings(prefix, 30.0, SETTINGS, protected=protected)
    assert protected == {"s.a_b": "fk1"} and {r.key for r in recs} == {"duplicate_index:s.a"}
