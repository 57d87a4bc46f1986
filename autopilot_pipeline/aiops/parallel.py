"""Run independent pieces of AI-ops work (series, chunks of series, corpus replays) in worker processes.

One place for the process pool: the anomaly scoring (:mod:`.detection`), the failure predictions
(:mod:`.failure_prediction`) and the risk backtest (:mod:`.risk_backtest`) all map a picklable function over
a list and must get the same list back as a plain loop would give. Pure (standard library and polars).

Why ``spawn`` and not ``fork``: polars and OpenBLAS keep thread pools, and a forked child of a
multi-threaded parent can deadlock on a lock held by a thread that does not exist in the child. A spawned
worker costs an interpreter start and the imports (about 1-2 s on the project machine), so callers keep
small inputs in their own process (see :func:`worth_a_pool`).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

import polars as pl

__all__ = ["default_workers", "process_map", "split_series", "worth_a_pool"]

T = TypeVar("T")
R = TypeVar("R")

#: Most processes the default asks for: the deployment target has 2 cores, and a worker's memory (a batch
#: of series as arrays) is better spent on one more process only when there is a core for it.
DEFAULT_MAX_WORKERS = 2


def default_workers() -> int:
    """Worker processes by default: one per core, at most :data:`DEFAULT_MAX_WORKERS` (1 = in process)."""
    return max(1, min(DEFAULT_MAX_WORKERS, os.cpu_count() or 1))


def worth_a_pool(workers: int, pieces: int, size: int, min_size: int) -> bool:
    """Whether a pool pays: more than one worker and one piece, and at least ``min_size`` units of work
    (rows, series: the caller's measure). Below that, the 1-2 s start of the workers costs more than the
    second core saves."""
    return workers > 1 and pieces > 1 and size >= min_size


def process_map(fn: Callable[[T], R], items: Sequence[T], workers: int, *, chunksize: int = 1) -> list[R]:
    """``[fn(item) for item in items]``, in ``workers`` spawned processes when ``workers`` > 1 and there is
    more than one item; in this process otherwise (and inside a daemonic process). ``fn`` must be a
    module-level function (picklable); the results come back in the order of ``items`` whatever the
    number of workers."""
    if workers <= 1 or len(items) <= 1 or multiprocessing.current_process().daemon:
        # (a daemonic process, e.g. a pool worker, may not start processes of its own)
        return [fn(item) for item in items]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=min(workers, len(items)),
        mp_context=ctx,
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        return list(pool.map(fn, items, chunksize=chunksize))


#: prctl(2) option: the signal a process gets when the thread that started it ends.
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Pool initializer: end this worker when its parent dies (Linux). A pool's workers hold both ends of
    their task pipe, so a parent killed by SIGKILL (a Celery worker lost, an OOM kill) or by a plain SIGTERM
    never shows them an end of input: without this they would sit, each with its imports and a batch in
    memory, until the machine restarts. SIGKILL, because a worker inherits ignored signals (a command
    that ignores SIGTERM while it cleans up, its callers after it) and holds nothing to clean up."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def split_series(frame: pl.DataFrame, keys: Sequence[str], parts: int) -> list[pl.DataFrame]:
    """``frame`` cut into at most ``parts`` frames with whole series (rows sharing ``keys``), the series
    dealt round-robin in order of first appearance so that the parts get similar numbers of series."""
    if not keys or parts <= 1:
        return [frame]
    series = frame.select(keys).unique(maintain_order=True)
    return [
        frame.join(series[k::parts], on=list(keys), how="semi", maintain_order="left")
        for k in range(min(parts, series.height))
    ]
