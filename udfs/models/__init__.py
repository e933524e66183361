"""Models: references (pure), the MLflow registry and catalog, and the worker-side loading by kind into a
per-worker cache; backends/ holds one loader per weight layout (kind), not per architecture."""
