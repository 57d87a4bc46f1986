"""The Dagster code location: everything under ``defs/``, plus project-wide policy."""

from pathlib import Path

import dagster as dg

from autopilot_pipeline.defs import executors


@dg.definitions
def defs() -> dg.Definitions:
    # In-process execution unless AUTOPILOT_EXECUTOR says otherwise (defs/executors.py): our steps are short
    # and I/O bound; a process per step costs ~2.5 s each.
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(executor=executors.from_environment()),
    )
