"""The instance storage of dagster.yaml (defs/instance_storage.py) against dagster-postgres's own, on real
Postgres: creating a run over a range of multi-partitions leaves the same planned-materialization rows, asset
rows and planned asset-check rows, in the same order, whichever of the two wrote them; a batch that fails
leaves nothing behind and Dagster stores its events one by one; schema checks are remembered only once
they succeed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
import yaml
from dagster._core.events import DagsterEventType
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from psycopg import sql

from autopilot_pipeline import settings
from autopilot_pipeline.defs import instance_storage
from autopilot_pipeline.postgres import urls

PARTITIONS = dg.MultiPartitionsDefinition(
    {
        "target": dg.StaticPartitionsDefinition(["a", "b"]),
        "hour": dg.HourlyPartitionsDefinition("2026-03-01-00:00"),
    }
)


@dg.asset(partitions_def=PARTITIONS)
def raw() -> None: ...


@dg.asset(partitions_def=PARTITIONS, deps=[raw])
def table() -> None: ...


@dg.asset_check(asset=table)
def table_is_fine() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


DEFS = dg.Definitions(
    assets=[raw, table],
    asset_checks=[table_is_fine],
    jobs=[dg.define_asset_job("planned", selection=[raw, table], partitions_def=PARTITIONS)],
)
#: Six hours of target a: multi-partition keys list the time dimension first.
RANGE = {
    ASSET_PARTITION_RANGE_START_TAG: "2026-03-01-00:00|a",
    ASSET_PARTITION_RANGE_END_TAG: "2026-03-01-05:00|a",
}
PLANNED = DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value


@pytest.fixture
def make_instance(pg_url: str, tmp_path: Path) -> Iterator[Any]:
    """``make_instance(shipped)``: an instance in a database of its own on the test server, with the storage
    of the shipped dagster.yaml or with dagster-postgres's plain ``storage: postgres``."""
    server = urls.with_database(pg_url, "postgres")
    made: list[tuple[dg.DagsterInstance, str]] = []

    def make(shipped: bool) -> dg.DagsterInstance:
        name = f"{urls.parse(pg_url).database}_{len(made)}"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = urls.dagster_url(pg_url, name)
        if shipped:
            storage = yaml.safe_load((settings.PROJECT_ROOT / "dagster.yaml").read_text())["storage"]
            storage["custom"]["config"] = {"postgres_url": url}
        else:
            storage = {"postgres": {"postgres_url": url}}
        home = tmp_path / name
        home.mkdir()
        (home / "dagster.yaml").write_text(yaml.safe_dump({"storage": storage}))
        instance = dg.DagsterInstance.from_config(str(home))
        made.append((instance, name))
        return instance

    yield make
    for instance, name in made:
        instance.dispose()
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _rows(instance: dg.DagsterInstance, query: str, *params: Any) -> list[tuple[Any, ...]]:
    url = urls.libpq_url(instance.event_log_storage.postgres_url)  # type: ignore[attr-defined]
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def _written(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """What creating the run wrote, without ids, run ids and times (which differ between two runs)."""
    return {
        "events": _rows(
            instance,
            "SELECT dagster_event_type, step_key, asset_key, partition FROM event_logs WHERE run_id = %s "
            "ORDER BY id",
            run_id,
        ),
        "assets": _rows(
            instance,
            "SELECT asset_key, last_run_id = %s FROM asset_keys ORDER BY asset_key",
            run_id,
        ),
        "last events": _rows(  # an asset's row holds the time of its last planned event
            instance,
            "SELECT a.asset_key FROM asset_keys a JOIN event_logs e ON e.asset_key = a.asset_key "
            "WHERE e.run_id = %s GROUP BY a.asset_key, a.last_materialization_timestamp "
            "HAVING a.last_materialization_timestamp = max(e.timestamp) ORDER BY a.asset_key",
            run_id,
        ),
        "checks": _rows(
            instance,
            "SELECT asset_key, check_name, partition, execution_status FROM asset_check_executions "
            "WHERE run_id = %s ORDER BY id",
            run_id,
        ),
    }


def _create_run(instance: dg.DagsterInstance) -> str:
    return instance.create_run_for_job(DEFS.resolve_job_def("planned"), tags=RANGE).run_id


def test_the_shipped_storage_writes_a_run_s_planned_events_as_dagster_postgres_does(
    make_instance: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "5")  # several batches, one with the check in it
    ours, theirs = make_instance(shipped=True), make_instance(shipped=False)
    assert type(ours.event_log_storage) is instance_storage.PostgresEventLogStorage
    assert type(theirs.event_log_storage).__module__.startswith("dagster_postgres")
    mine, reference = _written(ours, _create_run(ours)), _written(theirs, _create_run(theirs))
    planned = [row for row in reference["events"] if row[0] == PLANNED]
    assert len(planned) == 2 * 6  # two assets x six hours of target a: one event per partition
    assert {row[3] for row in planned} == {f"2026-03-01-0{h}:00|a" for h in range(6)}
    assert mine == reference
    assert reference["assets"] == [('["raw"]', True), ('["table"]', True)]
    assert reference["last events"] == [('["raw"]',), ('["table"]',)]
    assert [row[1:] for row in reference["checks"]] == [("table_is_fine", None, "PLANNED")]


def test_a_batch_of_planned_events_is_one_insert_compiled_once(
    make_instance: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch is one multi-row ``INSERT`` (not one per event), and every batch reuses the statement
    SQLAlchemy compiled for the first, whatever its size."""
    from sqlalchemy import event
    from sqlalchemy.engine.interfaces import CacheStats

    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "5")
    instance = make_instance(shipped=True)
    engine = instance.event_log_storage._engine  # type: ignore[attr-defined]
    cache_hits: list[bool] = []

    def seen(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO EVENT_LOGS"):
            cache_hits.append(context.cache_hit is CacheStats.CACHE_HIT)

    event.listen(engine, "before_cursor_execute", seen)
    _create_run(instance)
    _create_run(instance)
    # 13 events a run (12 planned materializations, 1 planned check) in batches of 5 + 5 + 3
    assert cache_hits == [False] + [True] * 5


def test_a_failed_batch_leaves_nothing_and_dagster_stores_its_events_one_by_one(
    make_instance: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "5")
    instance = make_instance(shipped=True)
    storage = instance.event_log_storage
    write_check = storage.store_asset_check_event
    failures: list[int | None] = []

    def fails_once(event: Any, event_id: int | None) -> None:
        if not failures:  # the last write of the batch's transaction: everything before it is undone
            failures.append(event_id)
            raise RuntimeError("connection lost")
        write_check(event, event_id)

    monkeypatch.setattr(storage, "store_asset_check_event", fails_once)
    written = _written(instance, _create_run(instance))
    assert failures  # the batch with the check failed; Dagster then stored its events one at a time
    assert len([row for row in written["events"] if row[0] == PLANNED]) == 12
    assert len(written["events"]) == len(set(written["events"])) == 13  # each once, the check's too
    assert [row[1:] for row in written["checks"]] == [("table_is_fine", None, "PLANNED")]


def test_schema_checks_are_remembered_once_found(make_instance: Any) -> None:
    storage = make_instance(shipped=True).event_log_storage
    assert not storage.has_table("later")  # not found: asked again next time
    with psycopg.connect(urls.libpq_url(storage.postgres_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE later (id int)")
        assert storage.has_table("later")
        conn.execute("DROP TABLE later")
    assert storage.has_table("later")  # remembered: migrations add tables, they never drop them
    assert storage.has_asset_key_col("cached_status_data") and storage.can_read_asset_status_cache()
    assert not storage.has_asset_key_col("no_such_column")


def test_processes_built_from_a_run_s_instance_ref_use_the_same_storage(make_instance: Any) -> None:
    """A Celery worker or a run process builds its instance from the ref a run carries."""
    instance = make_instance(shipped=True)
    with dg.DagsterInstance.from_ref(instance.get_ref()) as rebuilt:
        assert type(rebuilt.event_log_storage) is instance_storage.PostgresEventLogStorage
        assert type(rebuilt.run_storage) is instance_storage.PostgresRunStorage
        assert rebuilt.run_storage.has_run_stats_index_cols() and rebuilt.run_storage.has_backfill_id_column()
        assert rebuilt.get_runs_count() == 0
