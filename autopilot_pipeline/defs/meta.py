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


def record_frame(
    rows: Iterable[Mapping[str, Any]],
    schema: Mapping[str, pl.DataType | type[pl.DataType]],
    fields: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """The chosen fields of ``rows`` as a typed frame (typed even with no rows): ``schema`` names the columns
    in order, ``fields`` maps a column to the key it comes from where the two names differ."""
    keys = {column: (fields or {}).get(column, column) for column in schema}
    return pl.DataFrame([{c: row.get(k) for c, k in keys.items()} for row in rows], schema=dict(schema))
