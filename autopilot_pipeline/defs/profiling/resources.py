"""The profiling settings as a resource, and the opt-in switch for auto-remediation.

Auto-remediation stays a dry run unless ``auto_remediate`` is set in the resource config or the code
location is loaded with ``AUTOPILOT_AUTO_REMEDIATE=1``; even then it only builds high-priority,
planner-verified (HypoPG) indexes, with CREATE INDEX CONCURRENTLY.
"""

import os

import dagster as dg

from autopilot_pipeline.profiling.settings import ProfilingSettings

AUTO_REMEDIATE_ENV = "AUTOPILOT_AUTO_REMEDIATE"
_TRUE = {"1", "true", "yes", "on"}


class ProfilingConfig(dg.Config, ProfilingSettings):
    """:class:`ProfilingSettings` as Dagster config: one definition of each threshold, editable per run."""


class ProfilingResource(dg.ConfigurableResource):
    """The profiling domain's settings for its assets (defaults and reasons: :class:`ProfilingSettings`)."""

    settings: ProfilingConfig = ProfilingConfig()


def auto_remediate_from(environ: dict[str, str] | os._Environ[str]) -> bool:
    return environ.get(AUTO_REMEDIATE_ENV, "").strip().lower() in _TRUE


@dg.definitions
def resources() -> dg.Definitions:
    # Read once, when the code location loads.
    settings = ProfilingConfig(auto_remediate=auto_remediate_from(os.environ))
    return dg.Definitions(resources={"profiling": ProfilingResource(settings=settings)})
