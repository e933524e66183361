"""What a run's MLflow record shows besides numbers: per task, its labels (or languages) and its reasons.

``tally`` counts them on the written rows (one Spark aggregation for every task, which also gives the job's
row and null-with-reason counts); ``figure`` draws one
row of bar charts per task: the label distribution (classify, sentiment; the detected language for
language and translate; the method for summarize) and the null-with-reason reasons.
"""
from __future__ import annotations

import re

from udfs.tasks.pipeline import PlannedTask

LABEL_FIELDS = ("label", "language", "source_language", "method")  # the first a task's result has is charted
TOP = 12  # bars per chart; the rest are summed into "(other)"


def _label_field(t: PlannedTask) -> str | None:
    names = [name for name, _ in t.plan.fields]
    return next((f for f in LABEL_FIELDS if f in names), None)


NOT_READ = re.compile(r"language (\S+) is not read by ")  # udfs.runtime.guard's reason


def tally(written, planned: list[PlannedTask]) -> tuple[dict, dict[str, dict[str, dict[str, int]]]]:
    """One Spark job over ``written``: ({"rows": n, "<column>__errors": rows with a reason, ...},
    {task column: {"labels": {label: rows}, "reasons": {reason kind: rows}}})."""
    from pyspark.sql import functions as F

    entries = []
    for i, t in enumerate(planned):
        error = F.col(f"`{t.error_column}`") if t.error_column else F.col(f"`{t.column}`.error")
        label = F.col(f"`{t.column}`.`{_label_field(t)}`").cast("string") if _label_field(t) else \
            F.lit(None).cast("string")
        entries.append(F.struct(F.lit(i).alias("task"), label.alias("label"), error.alias("reason")))
    rows = written.select(F.explode(F.array(*entries)).alias("e")) \
        .groupBy("e.task", "e.label", "e.reason").count().collect()
    counts = {"rows": sum(r["count"] for r in rows if r["task"] == 0)}
    result = {}
    for i, t in enumerate(planned):
        labels: dict[str, int] = {}
        reasons: dict[str, int] = {}
        skipped: dict[str, int] = {}  # rows the language guard withheld, per language
        for r in rows:
            if r["task"] != i:
                continue
            if r["reason"] is not None and (m := NOT_READ.match(r["reason"])):
                skipped[m.group(1)] = skipped.get(m.group(1), 0) + r["count"]
            if r["reason"] is not None:
                key = r["reason"].split(":")[0][:60]  # "ValueError: <detail>" -> its kind
                reasons[key] = reasons.get(key, 0) + r["count"]
            elif r["label"] is not None:
                labels[r["label"]] = labels.get(r["label"], 0) + r["count"]
        counts[f"{t.column}__errors"] = sum(reasons.values())
        counts[f"{t.column}__skipped_for_language"] = dict(sorted(skipped.items()))
        if t.task == "language":  # every row's language, for the summary's rows per language
            counts[f"{t.column}__languages"] = dict(sorted(labels.items()))
        result[t.column] = {"labels": _top(labels), "reasons": _top(reasons)}
    return counts, result


def _top(counts: dict[str, int]) -> dict[str, int]:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    top = dict(ranked[:TOP])
    if len(ranked) > TOP:
        top["(other)"] = sum(n for _, n in ranked[TOP:])
    return top


def figure(dists: dict[str, dict[str, dict[str, int]]]):
    """One row per task: labels on the left, null-with-reason reasons on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(dists), 2, figsize=(11, 2.6 * len(dists)), squeeze=False)
    for (column, d), (left, right) in zip(dists.items(), axes):
        for ax, key, colour, title in ((left, "labels", "#4C72B0", "results"), (right, "reasons", "#C44E52",
                                                                               "null with reason")):
            counts = d[key]
            if counts:
                ax.barh(list(counts)[::-1], list(counts.values())[::-1], color=colour)
                ax.tick_params(axis="y", labelsize=8)
            else:
                ax.text(0.5, 0.5, "none" if key == "reasons" else "no labels (values)", ha="center", va="center",
                        transform=ax.transAxes, color="grey")
                ax.set_yticks([])
            ax.set_title(f"{column}: {title} ({sum(counts.values())} rows)", fontsize=9)
    fig.tight_layout()
    return fig
