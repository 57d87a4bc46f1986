"""The code location loads, validates with `dg check defs`, and every asset is described for the UI."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from autopilot_pipeline import runner
from autopilot_pipeline.defs import partitions

ROOT = Path(__file__).resolve().parent.parent


def test_dg_check_defs_passes(tmp_path):
    dg_bin = Path(sys.executable).parent / "dg"
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # a throw-away instance
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        [str(dg_bin), "check", "defs"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_defs_folder_builds_what_dagster_loads_from_it():
    """Built from the folder, the location has every asset, check, job, schedule, sensor and resource that
    ``dg.load_from_defs_folder`` finds, without its component-type snapshot."""
    from autopilot_pipeline.definitions import defs_folder

    def contents(defs: dg.Definitions) -> dict[str, list[str]]:
        repository = defs.get_repository_def()
        return {
            "assets": sorted(k.to_user_string() for k in repository.asset_graph.get_all_asset_keys()),
            "checks": sorted(str(k) for k in repository.asset_graph.asset_check_keys),
            "jobs": sorted(job.name for job in repository.get_all_jobs()),
            "schedules": sorted(s.name for s in repository.schedule_defs),
            "sensors": sorted(s.name for s in repository.sensor_defs),
            "resources": sorted(repository.get_top_level_resources()),
        }

    ours = defs_folder()
    dagsters = dg.load_from_defs_folder(path_within_project=ROOT / "autopilot_pipeline")
    assert contents(ours) == contents(dagsters)
    assert len(contents(ours)["assets"]) > 20 and contents(ours)["checks"]
    assert dagsters.metadata and not ours.metadata


def test_every_asset_has_group_description_kinds_and_owners():
    defs = runner.load_definitions()
    specs = [s for s in defs.resolve_all_asset_specs() if s.group_name != "sources"]
    assert specs
    for spec in specs:
        where = spec.key.to_user_string()
        assert spec.description, where
        assert spec.group_name and spec.group_name != "default", where
        assert spec.kinds, where
        assert spec.owners, where


def test_jobs_schedules_and_sensor_are_defined():
    defs = runner.load_definitions()
    for job in ("health_hourly_job", "daily_rollups_job"):
        assert defs.resolve_job_def(job).partitions_def is not None
    assert defs.resolve_schedule_def("health_hourly_schedule").cron_schedule == "2 * * * *"
    assert defs.resolve_sensor_def("health_log_sensor").default_status == dg.DefaultSensorStatus.RUNNING


def test_partition_keys_per_target():
    """A per-target × time job's time key gains the target; a target-only job (profiling) runs the target's
    partition and refuses a time key instead of launching a partition that does not exist."""
    defs = runner.load_definitions()
    profiling, health = defs.resolve_job_def("profiling_job"), defs.resolve_job_def("health_hourly_job")
    assert runner.target_partition_key(profiling, None, "shop_b") == "shop_b"
    assert runner.target_partition_key(profiling, "shop_b", "shop_b") == "shop_b"
    with pytest.raises(ValueError, match="partitioned by target only"):
        runner.target_partition_key(profiling, "2026-03-02-10:00", "shop_b")
    hour = "2026-03-02-10:00"
    assert runner.target_partition_key(health, hour, "shop_b") == partitions.target_key("shop_b", hour)
    assert runner.target_partition_key(health, None, "shop_b") is None
