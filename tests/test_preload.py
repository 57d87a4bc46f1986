"""What backfill run processes and worker pool processes get before their first run or step
(backfill.py, worker_app.py): the modules preloaded for them exist (the fork server skips a name it cannot
import, so a module renamed by an upgrade would only show as slower runs), and a run process takes what it
inherited out of the garbage collector's reach."""

from __future__ import annotations

import ast
import gc
import importlib
import os

import pytest

from autopilot_pipeline import backfill, definitions, settings
from autopilot_pipeline.defs import resources
from autopilot_pipeline.postgres import io


def _worker_app_imports() -> tuple[str, ...]:
    """``worker_app.FIRST_STEP_IMPORTS`` read from the source: importing worker_app needs a Redis URL."""
    tree = ast.parse((settings.PROJECT_ROOT / "autopilot_pipeline" / "worker_app.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "FIRST_STEP_IMPORTS" for t in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("worker_app.FIRST_STEP_IMPORTS not found")


@pytest.mark.parametrize(
    "name", [*backfill.FIRST_RUN_IMPORTS, *backfill.FIRST_CELERY_RUN_IMPORTS, *_worker_app_imports()]
)
def test_every_preloaded_module_exists(name: str) -> None:
    importlib.import_module(name)


def test_the_fork_server_preloads_the_code_location_and_the_first_run_imports() -> None:
    names = backfill._preload_modules()
    assert names[:2] == ["__main__", "autopilot_pipeline.backfill"]
    assert "autopilot_pipeline.defs.health.assets" in names
    assert set(backfill.FIRST_RUN_IMPORTS) | set(backfill.FIRST_CELERY_RUN_IMPORTS) <= set(names)


def test_a_run_process_freezes_what_it_inherited_and_takes_the_caller_s_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # what the run process holds (engines, bulk connections) is held for this test only
    monkeypatch.setattr(resources, "_held_engines", None)
    monkeypatch.setattr(io, "_held", None)
    env = {**os.environ, "AUTOPILOT_TEST_PRELOAD": "yes"}
    before, reuse = dict(os.environ), dict(definitions._reuse)
    try:
        gc.unfreeze()
        assert gc.get_freeze_count() == 0
        backfill._adopt_environment(env)
        assert gc.get_freeze_count() > 1000  # this process's objects, as a forked run process has them
        assert os.environ["AUTOPILOT_TEST_PRELOAD"] == "yes"
        assert resources._held_engines == {} and io._held == {}
    finally:
        gc.unfreeze()
        os.environ.clear()
        os.environ.update(before)
        definitions._reuse.update(reuse)


def test_a_run_process_that_cannot_prepare_leaves_the_error_to_its_first_run(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken instance configuration must not kill the run process while it starts (the pool would start
    another one forever): the first run meets the error again and reports it."""
    (tmp_path / "dagster.yaml").write_text("storage: [this is not a storage\n")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with pytest.raises(Exception, match="(?i)yaml|flow sequence|expected"):
        backfill.process_instance()
    backfill._prepare_run_process()  # no exception
