"""Model kinds: how a registered version's ``textspark/`` folder is turned into an in-memory model.

Each entry maps a kind to ``"module:callable"``; the callable is called on the worker as
``callable(folder, device=..., precision=..., **params)`` where ``folder`` holds ``textspark.json`` and,
for kinds with weights, ``weights/``. Modules are imported only when a model of that kind is loaded.
"""
BUILDERS: dict[str, str] = {
    "hf_encoder": "udfs.models.backends.hf:load_encoder",
    "embedding_head": "udfs.models.backends.heads:load_head_classifier",
    "hf_classifier": "udfs.models.backends.hf_classifier:load_classifier",
    "kmeans_centroids": "udfs.clustering.model:load_clustering",
    "fasttext_lid": "udfs.models.backends.fasttext_lid:load_detector",
    "lingua_lid": "udfs.models.backends.lingua_lid:load_lingua_detector",        # short texts (textspark[lingua])
    "lingua_hybrid_lid": "udfs.models.backends.lingua_lid:load_hybrid_detector",  # fastText long, lingua short
    "bergamot": "udfs.models.backends.bergamot:load_translator",
    "hf_seq2seq": "udfs.models.backends.seq2seq:load_seq2seq",
}
