"""Where state lives and which database to use, resolved once from the environment by the CLI."""

from __future__ import annotations

import os
from pathlib import Path

DATABASE_URL_ENV = "AUTOPILOT_DATABASE_URL"
STATE_DIR_ENV = "AUTOPILOT_STATE_DIR"
APP_DATABASE = "autopilot"
DAGSTER_DATABASE = "dagster"

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def state_dir() -> Path:
    """Local folder for the embedded server, Dagster home and caches (``.autopilot`` in the checkout)."""
    return Path(os.environ.get(STATE_DIR_ENV) or PROJECT_ROOT / ".autopilot").resolve()


def configured_database_url() -> str | None:
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    return url or None
