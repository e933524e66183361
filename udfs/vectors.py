"""Small numeric helpers shared by the tasks that compare vectors."""
from __future__ import annotations

import numpy as np


def unit_rows(v: np.ndarray) -> np.ndarray:
    """Each row of ``v`` divided by its L2 norm; an all-zero row stays zero. Keeps ``v``'s float dtype."""
    v = np.asarray(v)
    return v / np.clip(np.linalg.norm(v, axis=1, keepdims=True), 1e-12, None)
