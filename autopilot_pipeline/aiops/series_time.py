"""Time stamps of a series as numbers: epoch seconds, and each point's slot on its regular sampling grid
(so gaps and jitter do not shift a seasonal phase). Pure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

__all__ = ["grid_index", "to_epoch_seconds"]


def to_epoch_seconds(timestamps: Sequence | np.ndarray | pl.Series) -> np.ndarray:
    """Timestamps (datetimes, numbers or a polars Series) as float seconds since the epoch."""
    s = timestamps if isinstance(timestamps, pl.Series) else pl.Series("t", list(timestamps))
    if s.dtype == pl.Datetime or isinstance(s.dtype, pl.Datetime):
        return s.dt.epoch("us").cast(pl.Float64).to_numpy() / 1e6
    if s.dtype == pl.Date:
        return s.cast(pl.Datetime("us")).dt.epoch("us").cast(pl.Float64).to_numpy() / 1e6
    if s.dtype.is_numeric():
        return s.cast(pl.Float64).to_numpy()
    raise TypeError(f"timestamps must be datetimes or numbers, not {s.dtype}")


def grid_index(t_sec: np.ndarray) -> np.ndarray:
    """Position of each (sorted) timestamp on the series' regular grid of its median spacing."""
    if t_sec.size < 2:
        return np.zeros(t_sec.size, dtype=np.int64)
    dt = np.diff(t_sec)
    pos = dt[dt > 0]
    if pos.size == 0:
        return np.arange(t_sec.size, dtype=np.int64)
    step = float(np.median(pos))
    g = np.rint((t_sec - t_sec[0]) / step).astype(np.int64)
    return np.maximum.accumulate(g)
