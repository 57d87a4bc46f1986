"""How long a run may take, whether it is retried, and which lane of the run queue it waits in.

Dead runs must not block everything (docs/RELIABILITY.md): ``dagster.yaml`` turns on run monitoring (a run
whose process died is marked failed) and run retries, and gives the minute alert evaluation a lane of its
own, so background work (health backfills, profiling, AI ops, the push) can hold at most two of the three
run slots and never starve the alerts. A retry is allowed only where a rerun is safe: every partition write
replaces its window in one transaction, so health, rollups, AI ops and the push may rerun; profiling (it may
build indexes) and the alert evaluation (the next minute is its retry) do not.
"""

LANE_TAG = "autopilot/lane"
MAX_RUNTIME_TAG = "dagster/max_runtime"  # seconds; run monitoring fails a run that takes longer
MAX_RETRIES_TAG = "dagster/max_retries"


def background(max_runtime_s: int, retries: int) -> dict[str, str]:
    """Tags of a background run: the shared lane, a runtime ceiling and the retries a safe rerun allows."""
    return {LANE_TAG: "background", MAX_RUNTIME_TAG: str(max_runtime_s), MAX_RETRIES_TAG: str(retries)}


#: The alert evaluation: its own lane, one minute at most, no retry (the next tick evaluates again).
ALERTING = {LANE_TAG: "alerting", MAX_RUNTIME_TAG: "60", MAX_RETRIES_TAG: "0"}
