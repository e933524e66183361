"""The confusion matrix as a PNG, logged with training and evaluation runs."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def confusion_png(confusion: list[list[int]], labels: list[str], path: Path, title: str = "") -> Path:
    """Draw ``confusion`` (rows: true, columns: predicted) with its counts to ``path``; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(labels), 1.0 + 0.8 * len(labels)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def contingency_figure(counts: list[list[int]], row_labels: list[str], column_labels: list[str], ylabel: str,
                       xlabel: str, title: str = ""):
    """A matplotlib figure of ``counts`` (rows x columns) with each count written in its cell: the shadow job's
    confusion matrix (champion label x challenger label) and cluster contingency table."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    cm = np.asarray(counts).reshape(len(row_labels), len(column_labels))
    fig, ax = plt.subplots(figsize=(1.8 + 0.9 * len(column_labels), 1.4 + 0.8 * len(row_labels)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(column_labels)), column_labels, rotation=45, ha="right")
    ax.set_yticks(range(len(row_labels)), row_labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    top = cm.max() if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > top / 2 else "black")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
