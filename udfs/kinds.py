"""Model kinds: how a registered version's ``textspark/`` folder is turned into an in-memory model.

Each entry maps a kind to ``"module:callable"``; the callable is called on the worker as
``callable(folder, device=..., precision=..., **params)`` where ``folder`` holds ``textspark.json`` and,
for kinds with weights, ``weights/``. Modules are imported only when a model of that kind is loaded.
"""
BUILDERS: dict[str, str] = {
    "hf_encoder": "udfs.backends.hf:load_encoder",
}
