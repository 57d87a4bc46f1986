"""The shape of the house: the import contract, module sizes, and a reviewed snapshot of the asset graph.

The snapshot makes any change to the graph (keys, dependencies, groups, partitions, automation conditions,
checks, owners, kinds) a diff someone reviews: after an intended change, run
``AUTOPILOT_UPDATE_SNAPSHOTS=1 ./autopilot test tests/test_architecture.py`` and commit the new file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import dagster as dg

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "autopilot_pipeline"
SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
MAX_MODULE_LINES = 700


def test_import_contract_holds() -> None:
    """Arrows point down, pure modules stay pure, no domain reads another's store (pyproject.toml)."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


#: Domain modules that are not pure: the stores (SQL) and the orchestration that joins a store to the pure
#: modules. Every other domain module must be listed as pure in the import contract.
EDGES = {
    "health.store",
    "alerting.engine",
    "alerting.notifications",
    "alerting.store",
    "profiling.store",
    "aiops.llm",
    "aiops.pipeline",
    "aiops.store",
    "metrics.store",
    "demo.store",
}
DOMAINS = ("health", "alerting", "profiling", "aiops", "metrics", "demo")


def test_every_domain_module_is_declared_pure_or_an_edge() -> None:
    """A new module must say what it is: pure (listed in the contract, so checked) or a store/orchestration."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    [pure_contract] = [c for c in config if c["name"].startswith("Pure modules")]
    pure = {m.removeprefix("autopilot_pipeline.") for m in pure_contract["source_modules"]}
    undeclared = []
    for domain in DOMAINS:
        for path in (PACKAGE / domain).rglob("*.py"):
            module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
            if path.name == "__init__.py" or module in pure:
                continue
            if not any(module == edge or module.startswith(edge + ".") for edge in EDGES):
                undeclared.append(module)
    assert not undeclared, f"declare as pure (pyproject.toml) or as an edge (EDGES): {sorted(undeclared)}"


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    too_big = {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not too_big, f"split by concept: {too_big}"


def _partitions(spec: dg.AssetSpec) -> dict[str, Any] | None:
    return _describe_partitions(spec.partitions_def)


def _describe_partitions(p: dg.PartitionsDefinition | None) -> dict[str, Any] | None:
    if p is None:
        return None
    if isinstance(p, dg.MultiPartitionsDefinition):
        return {
            "type": type(p).__name__,
            "dimensions": {d.name: _describe_partitions(d.partitions_def) for d in p.partitions_defs},
        }
    described: dict[str, Any] = {"type": type(p).__name__}
    for attr in ("cron_schedule", "timezone", "end_offset", "name"):
        value = getattr(p, attr, None)
        if value is not None:
            described[attr] = value
    start = getattr(p, "start", None)
    if start is not None:
        described["start"] = start.isoformat()
    return described


def asset_graph_snapshot() -> dict[str, Any]:
    """The graph as plain data, sorted, so the snapshot diff reads like a review."""
    from autopilot_pipeline.definitions import defs

    definitions = defs()
    graph = definitions.resolve_asset_graph()
    checks: dict[str, list[str]] = {}
    for key in graph.asset_check_keys:
        checks.setdefault(key.asset_key.to_user_string(), []).append(key.name)
    assets = {}
    for spec in definitions.resolve_all_asset_specs():
        name = spec.key.to_user_string()
        condition = spec.automation_condition
        assets[name] = {
            "group": spec.group_name,
            "deps": sorted(dep.asset_key.to_user_string() for dep in spec.deps),
            "partitions": _partitions(spec),
            "automation_condition": condition.get_label() or type(condition).__name__ if condition else None,
            "checks": sorted(checks.get(name, [])),
            "owners": sorted(spec.owners),
            "kinds": sorted(spec.kinds),
            "has_description": bool(spec.description),
        }
    repository = definitions.get_repository_def()
    return {
        "assets": dict(sorted(assets.items())),
        "jobs": sorted(job.name for job in repository.get_all_jobs() if not job.name.startswith("__")),
        "schedules": sorted(s.name for s in repository.schedule_defs),
        "sensors": sorted(s.name for s in repository.sensor_defs),
    }


def test_asset_graph_matches_the_reviewed_snapshot() -> None:
    current = json.dumps(asset_graph_snapshot(), indent=2, sort_keys=True) + "\n"
    if os.environ.get("AUTOPILOT_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(current)
    assert SNAPSHOT.exists(), "no snapshot yet: run with AUTOPILOT_UPDATE_SNAPSHOTS=1 and commit it"
    assert json.loads(current) == json.loads(SNAPSHOT.read_text()), (
        "the asset graph changed: if on purpose, update the snapshot (see this module's docstring)"
    )


def test_every_asset_has_a_description_and_a_group() -> None:
    for name, asset in asset_graph_snapshot()["assets"].items():
        if name.startswith("automation/"):
            continue  # external source tables: described, never materialized here
        assert asset["has_description"] and asset["group"], name
