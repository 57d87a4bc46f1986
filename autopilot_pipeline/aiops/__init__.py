"""The AI-ops domain (seed Phase 6): the anomaly detector, trends, forecasts and failure risk, insights and
the optional LLM narrative. Pure modules (``detector*``, ``trends``, ``forecast``, ``risk``, ``insights``, ...),
the SQL in ``store``, and ``pipeline``, which runs one task over a window for the assets and the doors."""
