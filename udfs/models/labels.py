"""Sentiment labels: a model's own labels ("POSITIVE", "LABEL_1", "5 stars") -> negative / neutral / positive.

In the models room, below the tasks, so training reads them too: the ``sentiment`` task's predict maps its
scores here (the MLflow pyfunc face runs that predict through the batch core, so it gives the same labels and
scores), and training and evaluation check a ``label_map`` covers every label.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

CANONICAL = ("negative", "neutral", "positive")


def canonical_map(model_labels: Sequence[str], label_map: Mapping[str, str] | None) -> dict[str, str]:
    """model label -> canonical label; raises ValueError naming any label that maps nowhere."""
    label_map = dict(label_map or {})
    out, missing = {}, []
    for label in model_labels:
        target = label_map.get(label, label_map.get(str(label).lower(), str(label).lower()))
        if target in CANONICAL:
            out[label] = target
        else:
            missing.append(label)
    if missing:
        raise ValueError(f"label_map: model labels {missing} map to no canonical sentiment label; give "
                         f"label_map entries mapping them to one of {', '.join(CANONICAL)}")
    return out


def canonical_scores(proba: np.ndarray, model_labels: Sequence[str],
                     label_map: Mapping[str, str] | None) -> tuple[list[str], np.ndarray]:
    """(canonical labels present, rows x those labels): the probabilities of model labels that map to one
    canonical label are added up."""
    mapping = canonical_map(model_labels, label_map)
    targets = [c for c in CANONICAL if c in mapping.values()]
    merge = np.zeros((len(model_labels), len(targets)))
    for i, label in enumerate(model_labels):
        merge[i, targets.index(mapping[label])] = 1.0
    return targets, proba @ merge
