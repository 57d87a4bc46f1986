"""Dagster resources: the Postgres connection and the frame hand-off between assets, bound once for the
whole code location; secrets only through ``EnvVar``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dagster as dg
import polars as pl
import psycopg
from pydantic import PrivateAttr
from sqlalchemy import Engine, create_engine

from autopilot_pipeline import settings
from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.postgres import io, migrate, pools, targets, urls

#: Engines kept for the life of this process, by URL, once :func:`hold_engines` is called.
_held_engines: dict[str, Engine] | None = None


def hold_engines() -> None:
    """Keep one engine per database URL in this process, for processes that serve many steps or runs (a
    Celery worker's pool, a backfill's run process): a step then takes a held connection instead of building
    an engine, opening a connection (a new server process and a password exchange) and checking the schema.
    Their bulk reads keep one connection per database too (``io.hold_bulk_connections``). Elsewhere an engine
    lives for one run, so nothing outlives it (tests drop their databases after)."""
    global _held_engines
    if _held_engines is None:
        _held_engines = {}
        os.register_at_fork(after_in_child=_forget_held_engines)
    io.hold_bulk_connections()


def _forget_held_engines() -> None:
    """A forked child must not use, nor close, its parent's connections (SQLAlchemy's advice after fork)."""
    if _held_engines:
        for engine in _held_engines.values():
            engine.dispose(close=False)
        _held_engines.clear()


def _checked_engine(database_url: str) -> Engine:
    """A new engine whose first connection proved the schema current (one line when it is behind)."""
    engine = pools.drop_dead_on_checkout(create_engine(urls.sqlalchemy_url(database_url), pool_size=2))
    with engine.connect() as sa_conn:
        migrate.require_current(sa_conn.connection.driver_connection)  # type: ignore[arg-type]
    return engine


class PostgresResource(dg.ConfigurableResource):
    """The monitored application's Postgres. One SQLAlchemy engine (psycopg 3) per run, disposed after, or
    one per process (:func:`hold_engines`)."""

    database_url: str

    _engine: Engine | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Take or create the engine; fail fast, in one line, when the schema is behind the code."""
        if _held_engines is None:
            self._engine = _checked_engine(self.database_url)
            return
        if self.database_url not in _held_engines:
            _held_engines[self.database_url] = _checked_engine(self.database_url)
        self._engine = _held_engines[self.database_url]

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None and _held_engines is None:
            self._engine.dispose()

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        """A psycopg connection in autocommit mode; wrap writes in ``conn.transaction()``."""
        if self._engine is None:  # used outside a run (e.g. a sensor evaluation)
            self.setup_for_execution(dg.build_init_resource_context())
        assert self._engine is not None
        with self._engine.connect() as sa_conn:
            raw: psycopg.Connection = sa_conn.connection.driver_connection  # type: ignore[assignment]
            raw.autocommit = True
            try:
                yield raw
            finally:
                if raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    raw.autocommit = False
                else:  # interrupted mid-statement: drop the connection rather than hide the interrupt
                    sa_conn.invalidate()

    @contextmanager
    def connect_source(self, target: str) -> Iterator[psycopg.Connection]:
        """The monitored database of ``target``: this one for ``default``, otherwise the target's URL, read
        now from its variable or file. An unknown or unreachable target fails the run in one line."""
        if target == targets.DEFAULT:
            with self.connect() as conn:
                yield conn
            return
        stack = ExitStack()
        try:
            with self.connect() as own:
                found = targets.get_target(own, target)
            conn = stack.enter_context(targets.connect_target(found))
        except AutopilotError as exc:
            raise dg.Failure(description=str(exc)) from None
        with stack:
            yield conn


_TRUNCATE_EVERY = {dg.HourlyPartitionsDefinition: "1h", dg.DailyPartitionsDefinition: "1d"}


def _time_partitions(partitions_def: dg.PartitionsDefinition) -> dg.TimeWindowPartitionsDefinition:
    """The time dimension of a (target × time) or plain time partitioning."""
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        partitions_def = next(
            dimension.partitions_def
            for dimension in partitions_def.partitions_defs
            if isinstance(dimension.partitions_def, dg.TimeWindowPartitionsDefinition)
        )
    assert isinstance(partitions_def, dg.TimeWindowPartitionsDefinition)
    return partitions_def


class PartitionedFrameIOManager(dg.ConfigurableIOManager):
    """Hands polars frames between assets as one Parquet file per time partition (and target).

    The time column comes from the asset's ``partition_expr`` metadata; a run over a partition range writes
    every partition of the range (empty ones too), so later runs can load any single partition. A
    ``target|time`` key is stored as ``<target>/<time>.parquet``.
    """

    base_dir: str

    def _path(self, key: dg.AssetKey, partition: str) -> Path:
        target, _, time_key = str(partition).rpartition("|")
        return Path(self.base_dir, *key.path, *([target] if target else []), f"{time_key}.parquet")

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        time_column = context.definition_metadata["partition_expr"]
        time_partitions = _time_partitions(context.asset_partitions_def)
        every = _TRUNCATE_EVERY[type(time_partitions)]
        keyed = obj.with_columns(pl.col(time_column).dt.truncate(every).alias("__partition"))
        parts = {
            key[0]: frame
            for key, frame in keyed.partition_by("__partition", as_dict=True, include_key=False).items()
        }
        for partition in context.asset_partition_keys:
            start = time_partitions.time_window_for_partition_key(str(partition).rpartition("|")[2]).start
            frame = parts.get(start, obj.clear())
            path = self._path(context.asset_key, partition)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            frame.write_parquet(tmp)
            tmp.replace(path)  # atomic: a reader never sees half a file

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        frames = []
        for partition in context.asset_partition_keys:
            path = self._path(context.asset_key, partition)
            if not path.exists():
                raise dg.Failure(
                    f"{context.asset_key.to_user_string()} partition {partition} has not been materialized; "
                    "materialize it first (e.g. with a backfill)"
                )
            frames.append(pl.read_parquet(path))
        return pl.concat(frames, how="vertical") if frames else pl.DataFrame()


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "postgres": PostgresResource(database_url=dg.EnvVar(settings.DATABASE_URL_ENV)),
            "frames": PartitionedFrameIOManager(base_dir=str(settings.state_dir() / "frames")),
        }
    )
