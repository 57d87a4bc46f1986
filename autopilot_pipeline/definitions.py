"""The Dagster code location: everything under ``defs/``, plus project-wide policy."""

import logging
import os
from pathlib import Path

import dagster as dg

from autopilot_pipeline.defs import executors

_reuse = {"on": False}
_built: dict[frozenset[tuple[str, str]], dg.Definitions] = {}
_log = logging.getLogger(__name__)
#: Variables a Celery worker sets for its own logging while it starts and in each pool process (after the
#: code location was built in its main process): no setting of ours, so not part of the key.
_BOOKKEEPING = ("CELERY_LOG_", "_MP_FORK_", "FORKED_BY_MULTIPROCESSING", "celery_dummy_proxy")


def reuse_in_this_process() -> None:
    """Build the code location once per environment in this process, as a code server does.

    For processes that serve many runs or steps (backfill run processes, Celery worker pools): Dagster
    rebuilds a lazily defined location at every ``ReconstructableRepository.get_definition``, two or three
    times per run and step (~0.3 CPU s each). The environment is the key (the executor and every setting
    come from it), so a process whose environment changes still gets a fresh build; the variables that
    Celery sets for its logging (``_BOOKKEEPING``) do not count.
    """
    _reuse["on"] = True


def defs_folder() -> dg.Definitions:
    """Everything under ``defs/``, built from that folder.

    ``dg.load_from_defs_folder`` builds the project's root instead, which adds to the same definitions a
    JSON snapshot of the schema of every component type installed (metadata for Dagster's component
    browser; this project defines no components): ~60 ms of a ~100 ms build, paid by every run process,
    worker and CLI command that builds the location, several times per run where it is not reused.
    """
    tree = dg.ComponentTree.for_project(Path(__file__).parent)
    return tree.build_defs(tree.defs_module_path)


def _build() -> dg.Definitions:
    # In-process execution unless AUTOPILOT_EXECUTOR says otherwise (defs/executors.py): our steps are short
    # and I/O bound; a process per step costs ~2.5 s each.
    return dg.Definitions.merge(defs_folder(), dg.Definitions(executor=executors.from_environment()))


@dg.definitions
def defs() -> dg.Definitions:
    if not _reuse["on"]:
        return _build()
    key = frozenset((k, v) for k, v in os.environ.items() if not k.startswith(_BOOKKEEPING))
    if key not in _built:
        _built.clear()
        _built[key] = _build()
        _log.info("code location built for this environment (pid %d)", os.getpid())
    return _built[key]
