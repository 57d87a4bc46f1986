"""The Dagster instance's Postgres storage (``dagster.yaml``: ``storage: custom``): dagster-postgres's own with
two costs cut that the scale-out benchmark measured (docs/SCALING.md, "What a Celery step costs").

- **A run's planned materializations in one transaction.** Creating a run logs one
  ``ASSET_MATERIALIZATION_PLANNED`` event per asset and partition (168 for one target's day of
  ``health_hourly_job``), so that the UI and the automation conditions can tell which partitions a run is
  materializing and which it failed. Dagster hands them to the storage in batches
  (``DAGSTER_EVENT_BATCH_SIZE``), but dagster-postgres writes such a batch one event at a time: an insert,
  a ``NOTIFY`` and a transaction updating the asset's row, ~7 statements per event and three quarters of all
  the statements of a backfill. Here a batch of planned events (with the asset checks' planned evaluations
  that come with them) is one multi-row insert (one statement, compiled once per process) and one upsert
  per asset, in one transaction: the same rows in the same order as the one-by-one path, without the
  ``NOTIFY`` (Dagster no longer listens to it, and its own batch path for materializations skips it too). A
  batch that fails leaves nothing, and Dagster then writes its events one by one, as it does for any failed
  batch.
- **Schema checks remembered.** Before many reads and writes Dagster asks the catalog whether a table or a
  column of its own schema exists (a ``pg_class`` query, or a reflection of all the columns of
  ``asset_keys``, ``runs`` or ``bulk_actions``: ~1,000 statements of the backfill, the reflections the
  costliest). What was found once is found for the life of the storage, as dagster-postgres already does for
  its secondary indexes: migrations add to the schema, they do not take away. What was not found is asked
  again.

Every process that reads our ``dagster.yaml`` uses it (``autopilot dev``, the run processes, ``autopilot
worker``); the Helm deployment keeps the chart's own storage (deploy/helm/values.yaml).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from dagster._core.events import DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqlEventLogStorageTable
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage, PostgresScheduleStorage
from dagster_postgres import PostgresEventLogStorage as _PlainEventLogStorage
from dagster_postgres import PostgresRunStorage as _PlainRunStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config
from sqlalchemy.engine import Connection

__all__ = ["PLANNED_EVENTS", "PostgresEventLogStorage", "PostgresRunStorage", "PostgresStorage"]

#: The event types a run's creation logs in one batch (``RunDomain._log_asset_planned_events``).
PLANNED_EVENTS = frozenset(
    {DagsterEventType.ASSET_MATERIALIZATION_PLANNED, DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED}
)


#: One statement for every batch, executed with the batch's rows: SQLAlchemy sends them as one multi-row insert
#: ("insertmanyvalues") and returns the ids in the rows' order. Dagster's ``prepare_insert_event_batch`` builds
#: an insert with the rows inside it instead, which SQLAlchemy compiles again for every batch: a quarter of
#: the cost of storing one (py-spy, Celery run processes).
_INSERT_EVENTS = SqlEventLogStorageTable.insert().returning(
    SqlEventLogStorageTable.c.id, sort_by_parameter_order=True
)


class _Remembering:
    """Built from config as this class (dagster-postgres's storages build their own class by name), and
    schema checks that remember a positive answer."""

    _found: set[str]

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> Any:
        return cls(  # type: ignore[call-arg]
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            inst_data=inst_data,
            token_provider=get_token_provider_from_config(config_value),
        )

    def _remembered(self, name: str, check: Callable[[], bool]) -> bool:
        found = getattr(self, "_found", None)
        if found is None:
            found = self._found = set()
        if name in found:
            return True
        if check():
            found.add(name)
            return True
        return False


class PostgresEventLogStorage(_Remembering, _PlainEventLogStorage):
    """dagster-postgres's event log storage; planned events stored a batch at a time, schema checks
    remembered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._batch = threading.local()  # the connection of the batch this thread is writing, if any
        super().__init__(*args, **kwargs)

    def has_table(self, table_name: str) -> bool:
        return self._remembered(f"table {table_name}", functools.partial(super().has_table, table_name))

    def has_asset_key_col(self, column_name: str) -> bool:
        check = functools.partial(super().has_asset_key_col, column_name)
        return self._remembered(f"asset_keys.{column_name}", check)

    def index_connection(self) -> contextlib.AbstractContextManager[Connection]:
        """Inside :meth:`_store_planned_batch` on this thread, its transaction (so the asset-check rows that
        Dagster's own code writes join it); otherwise a connection of the pool."""
        conn = getattr(self._batch, "conn", None)
        return contextlib.nullcontext(conn) if conn is not None else super().index_connection()

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if events and all(event.dagster_event_type in PLANNED_EVENTS for event in events):
            self._store_planned_batch(events)
        else:
            super().store_event_batch(events)

    @contextlib.contextmanager
    def _batch_transaction(self) -> Iterator[Connection]:
        with self.index_transaction() as conn:
            self._batch.conn = conn
            try:
                yield conn
            finally:
                self._batch.conn = None

    def _store_planned_batch(self, events: Sequence[EventLogEntry]) -> None:
        """What :meth:`store_event` does for each event, in one transaction: the event rows, the asset's row
        (last run, last event time) from its last planned event, an asset check's planned evaluation."""
        rows = [self._event_to_row(event) for event in events]
        with self._batch_transaction() as conn:
            event_ids = [int(row[0]) for row in conn.execute(_INSERT_EVENTS, rows).fetchall()]
            stored = list(zip(events, event_ids, strict=True))
            planned = [
                (e, i)
                for e, i in stored
                if e.dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED
            ]
            self._store_asset_event_tags(conn, [e for e, _ in planned], [i for _, i in planned])
            last_per_asset = {e.get_dagster_event().asset_key: (e, i) for e, i in planned}
            for event, event_id in last_per_asset.values():
                self._store_asset_event(conn, event, event_id)
            for event, event_id in stored:
                if event.dagster_event_type == DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED:
                    self.store_asset_check_event(event, event_id)


class PostgresRunStorage(_Remembering, _PlainRunStorage):
    """dagster-postgres's run storage; its schema checks (a reflection of the columns of ``runs`` or
    ``bulk_actions`` at every run event and run query) remembered."""

    def has_run_stats_index_cols(self) -> bool:
        return self._remembered("runs stats columns", super().has_run_stats_index_cols)

    def has_backfill_id_column(self) -> bool:
        return self._remembered("runs.backfill_id", super().has_backfill_id_column)

    def has_bulk_actions_selector_cols(self) -> bool:
        return self._remembered("bulk_actions.selector_id", super().has_bulk_actions_selector_cols)

    def has_bulk_action_job_name_column(self) -> bool:
        return self._remembered("bulk_actions.job_name", super().has_bulk_action_job_name_column)

    def has_backfill_tags_table(self) -> bool:
        return self._remembered("table backfill_tags", super().has_backfill_tags_table)


class PostgresStorage(_Remembering, DagsterPostgresStorage):
    """dagster-postgres's storage, same ``postgres_url`` config, with the run and event log storages above."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
    ) -> None:
        # dagster-postgres's three storages, built without touching the database, then replaced by ours,
        # built as it builds them
        super().__init__(postgres_url, False, inst_data, token_provider)
        self.should_autocreate_tables = should_autocreate_tables
        self._run_storage = PostgresRunStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        self._event_log_storage = PostgresEventLogStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        self._schedule_storage = PostgresScheduleStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )

    def _ours(self, cls: type) -> ConfigurableClassData | None:
        return (
            ConfigurableClassData(__name__, cls.__name__, self.inst_data.config_yaml)
            if self.inst_data
            else None
        )

    @property
    def event_storage_data(self) -> ConfigurableClassData | None:
        return self._ours(PostgresEventLogStorage)

    @property
    def run_storage_data(self) -> ConfigurableClassData | None:
        return self._ours(PostgresRunStorage)
