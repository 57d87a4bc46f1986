"""Small helpers for asset metadata the Dagster UI renders well."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg
import polars as pl

OWNERS = ["team:autopilot"]


def preview(frame: pl.DataFrame, rows: int = 10) -> dg.MetadataValue:
    """A markdown table of the first rows (floats rounded for reading)."""
    if frame.height == 0:
        return dg.MetadataValue.md("_no rows_")
    shown = frame.head(rows).with_columns(pl.selectors.float().round(2))
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    body = ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in shown.iter_rows()]
    return dg.MetadataValue.md("\n".join([header, rule, *body]))


def table_metadata(table: str, frame: pl.DataFrame) -> dict[str, object]:
    return {
        "dagster/table_name": table,
        "dagster/row_count": frame.height,
        "preview": preview(frame),
    }


#: Keys that hold for every partition of a run (the rest describe what the run read or wrote).
_SAME_FOR_EVERY_PARTITION = {"dagster/table_name", "target"}


def for_partitions(metadata: Mapping[str, object], one_partition: bool) -> dict[str, object]:
    """``metadata`` as it is for a one-partition run; for a range run, named for the run.

    Dagster copies one result's metadata onto every partition a run covers, so a range run's row count
    (which its UI plots per partition), statistics and preview would each claim the whole range for every
    hour: they become ``run_rows``, ``run_<key>``, and the preview (the range's first rows) is left out."""
    if one_partition:
        return dict(metadata)
    renamed = {"dagster/row_count": "run_rows"}
    return {
        key if key in _SAME_FOR_EVERY_PARTITION else renamed.get(key, f"run_{key}"): value
        for key, value in metadata.items()
        if key != "preview"
    }


def record_frame(
    rows: Iterable[Mapping[str, Any]],
    schema: Mapping[str, pl.DataType | type[pl.DataType]],
    fields: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """The chosen fields of ``rows`` as a typed frame (typed even with no rows): ``schema`` names the columns
    in order, ``fields`` maps a column to the key it comes from where the two names differ."""
    keys = {column: (fields or {}).get(column, column) for column in schema}
    return pl.DataFrame([{c: row.get(k) for c, k in keys.items()} for row in rows], schema=dict(schema))
