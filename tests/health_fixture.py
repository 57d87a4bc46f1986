"""A small, hand-checkable health_log fixture shared by the core and asset tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

H10 = datetime(2026, 3, 2, 10, tzinfo=UTC)
H11 = H10 + timedelta(hours=1)


def _row(
    i: int,
    at: datetime,
    source: str,
    kind: str,
    status: str | None,
    rt: float | None,
    inserted: datetime | None = None,
) -> dict:
    return {
        "id": i,
        "checked_at": at,
        "source": source,
        "kind": kind,
        "status": status,
        "response_time_ms": rt,
        "inserted_at": inserted or at + timedelta(seconds=2),
    }


def rows() -> list[dict]:
    m = timedelta(minutes=1)
    return [
        # api, 10:00 hour: 4 checks (3 up) + 1 error event
        _row(1, H10, "api", "health_check", "healthy", 100.0),
        _row(2, H10 + 15 * m, "api", "health_check", "healthy", 200.0),
        _row(3, H10 + 30 * m, "api", "health_check", "degraded", 300.0),
        _row(4, H10 + 45 * m, "api", "health_check", "down", None),
        _row(5, H10 + 50 * m, "api", "error", "error", None),
        # web, 10:00 hour: 2 healthy checks, one of them written 3 h late (kept, counted late)
        _row(6, H10 + 5 * m, "web", "health_check", "healthy", 50.0),
        _row(7, H10 + 20 * m, "web", "health_check", "healthy", 150.0, inserted=H10 + 200 * m),
        # api, 11:00 hour: 2 checks
        _row(8, H11 + 1 * m, "api", "health_check", "healthy", 1000.0),
        _row(9, H11 + 31 * m, "api", "health_check", "healthy", 3000.0),
        # bad rows, one of each reason
        _row(10, H10 + 10 * m, "api", "health_check", "healthy", -5.0),  # negative response time
        _row(11, H10 + 11 * m, "api", "health_check", "unknwn", 120.0),  # unknown status
        _row(12, H10 + 15 * m, "api", "health_check", "healthy", 200.0),  # duplicate of id 2
        _row(13, H10 + 12 * m, "api", "health_check", "healthy", None),  # null response time
        _row(14, H11 + 40 * m, "web", "health_check", "healthy", 80.0, inserted=H10),  # dated after insert
        # ignored entirely: an AI-ops finding is output, not input
        _row(15, H10 + 5 * m, "ai-ops", "anomaly", "warning", None),
    ]


def frame() -> pl.DataFrame:
    return pl.DataFrame(
        rows(),
        schema={
            "id": pl.Int64,
            "checked_at": pl.Datetime("us", "UTC"),
            "source": pl.String,
            "kind": pl.String,
            "status": pl.String,
            "response_time_ms": pl.Float64,
            "inserted_at": pl.Datetime("us", "UTC"),
        },
    )
