"""Worker-side model kinds: each module turns a registered ``textspark/`` folder into an in-memory model
(Hugging Face encoder, heads, classifier, seq2seq, fastText, Bergamot) and batches by token budget."""
from __future__ import annotations

from pathlib import Path


def inside(weights: Path, name: str, key: str) -> Path:
    """``weights / name`` for a file or folder a version's params name (``params.<key>``), refused unless it
    stays inside ``weights`` once links and ``..`` are resolved: a registry value is never a path elsewhere."""
    root = Path(weights).resolve()
    path = (root / str(name)).resolve()
    if not isinstance(name, str) or path == root or root not in path.parents:
        raise ValueError(f"{key}: got {name!r}; allowed: a name inside the registered weights folder")
    return path
