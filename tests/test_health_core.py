"""The pure health core against values computed by hand from tests/health_fixture.py."""

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from autopilot_pipeline.health import tables as health

from .health_fixture import H10, H11, frame


@pytest.fixture
def validated():
    return health.validate_health(frame())


def test_validation_quarantines_each_bad_row_with_its_reason(validated):
    clean, bad, counts = validated
    assert dict(zip(bad["id"], bad["reason"], strict=True)) == {
        10: "negative response time",
        11: "unknown status",
        12: "duplicate",
        13: "null response time",
        14: "timestamp in the future",
    }
    assert counts["late"] == 1
    assert counts["duplicate"] == 1 and counts["missing component"] == 0
    assert sorted(clean["id"]) == [1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_uptime_hourly(validated):
    out = health.uptime(validated[0])
    counts = ["checks", "up_checks", "uptime_pct", "degraded_checks", "degraded_ratio"]
    assert out.to_dicts() == [  # id 3 is the one degraded check: up, and a quarter of api's 10:00 checks
        {"bucket_start": H10, "component": "api", **dict(zip(counts, [4, 3, 75.0, 1, 0.25], strict=True))},
        {"bucket_start": H10, "component": "web", **dict(zip(counts, [2, 2, 100.0, 0, 0.0], strict=True))},
        {"bucket_start": H11, "component": "api", **dict(zip(counts, [2, 2, 100.0, 0, 0.0], strict=True))},
    ]


def test_uptime_daily_is_exact_rollup_not_mean_of_percentages(validated):
    daily = health.rollup_uptime(health.uptime(validated[0]))
    api = daily.filter(pl.col("component") == "api").row(0, named=True)
    assert (api["checks"], api["up_checks"]) == (6, 5)
    assert api["uptime_pct"] == pytest.approx(500 / 6)  # not (75 + 100) / 2
    assert (api["degraded_checks"], api["degraded_ratio"]) == (1, pytest.approx(1 / 6))


def test_daily_degraded_count_is_unknown_when_an_hour_lacks_it(validated):
    """Hours computed before the degraded columns existed hold NULL: the day's count is unknown, not 0."""
    hourly = health.uptime(validated[0]).with_columns(
        pl.when(pl.col("bucket_start") == H11)
        .then(None)
        .otherwise("degraded_checks")
        .alias("degraded_checks")
    )
    api = health.rollup_uptime(hourly).filter(pl.col("component") == "api").row(0, named=True)
    assert api["checks"] == 6 and api["degraded_checks"] is None and api["degraded_ratio"] is None


def test_error_rates(validated):
    out = health.error_rates(validated[0]).filter(pl.col("bucket_start") == H10)
    assert out.select("component", "events", "errors", "error_ratio", "errors_per_hour").to_dicts() == [
        {"component": "api", "events": 5, "errors": 2, "error_ratio": 0.4, "errors_per_hour": 2.0},
        {"component": "web", "events": 2, "errors": 0, "error_ratio": 0.0, "errors_per_hour": 0.0},
    ]


def test_response_time_percentiles_match_postgres_percentile_cont(validated):
    out = health.response_times(validated[0])
    expected = pl.DataFrame(
        {
            "bucket_start": [H10, H10, H11],
            "component": ["api", "web", "api"],
            "samples": [3, 2, 2],
            "avg_ms": [200.0, 100.0, 2000.0],
            "p50_ms": [200.0, 100.0, 2000.0],
            "p95_ms": [290.0, 145.0, 2900.0],
            "p99_ms": [298.0, 149.0, 2980.0],
            "max_ms": [300.0, 150.0, 3000.0],
        },
        schema_overrides={"bucket_start": pl.Datetime("us", "UTC")},
    )
    assert_frame_equal(out, expected)


def test_health_score_formula(validated):
    clean = validated[0]
    score = health.health_score(health.uptime(clean), health.error_rates(clean), health.response_times(clean))
    by_key = {(r["bucket_start"], r["component"]): r for r in score.to_dicts()}
    api10 = by_key[(H10, "api")]  # uptime 75 -> 0, errors 40 % -> 0, p95 290 ms -> 1
    assert (api10["uptime_score"], api10["error_score"], api10["latency_score"]) == (0.0, 0.0, 1.0)
    assert api10["health_score"] == pytest.approx(20.0)
    assert by_key[(H10, "web")]["health_score"] == pytest.approx(100.0)
    api11 = by_key[(H11, "api")]  # p95 2900 ms -> 1 - 1900/9000
    assert api11["latency_score"] == pytest.approx(1 - 1900 / 9000)
    assert api11["health_score"] == pytest.approx(100 * (0.5 + 0.3 + 0.2 * (1 - 1900 / 9000)))
    assert score["health_score"].is_between(0, 100).all()
