"""Classification metrics, computed by scikit-learn, shared by training and evaluation."""
from __future__ import annotations

import re
from typing import Any, Mapping

from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def classification_metrics(y_true: list[str], y_pred: list[str | None], labels: list[str]) -> dict[str, Any]:
    """accuracy, macro/weighted F1, per-class precision/recall/F1/support, confusion matrix (rows: true).

    A missing prediction (None) counts as wrong for its true class."""
    none = "(no prediction)"
    pred = [none if p is None else p for p in y_pred]
    p, r, f, support = precision_recall_fscore_support(y_true, pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, pred)),
        "macro_f1": float(f1_score(y_true, pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, pred, labels=labels, average="weighted", zero_division=0)),
        "per_class": {label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                              "support": int(support[i])} for i, label in enumerate(labels)},
        "confusion": confusion_matrix(y_true, pred, labels=labels).tolist(),
        "labels": list(labels),
        "rows": len(y_true),
        "no_prediction": sum(x is None for x in y_pred),
    }


def flat_metrics(m: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """``classification_metrics``' numbers as MLflow metric keys: ``<prefix>macro_f1``, ``<prefix><label>.f1``."""
    out = {f"{prefix}{k}": float(m[k]) for k in ("accuracy", "macro_f1", "weighted_f1")}
    for label, stats in m["per_class"].items():
        for k in ("precision", "recall", "f1"):
            out[f"{prefix}{_metric_key(label)}.{k}"] = float(stats[k])
    return out


def _metric_key(label: str) -> str:
    return re.sub(r"[^0-9A-Za-z_\-. /]", "_", str(label)) or "_"
