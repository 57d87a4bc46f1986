"""AI-ops orchestration: the glue between the pure analytics (``core``), the database edge (``postgres``),
the optional LLM narrative and the plots; the Dagster assets, ``autopilot analyze`` and ``autopilot
backtest`` all go through here."""
