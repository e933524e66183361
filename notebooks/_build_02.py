"""Build notebooks/02_train_evaluate.ipynb (no outputs): python notebooks/_build_02.py"""
from nbformat.v4 import new_code_cell, new_markdown_cell

from _nb import SETUP_SOURCE, WORKDIR, install_cell, parameter_cells, write_notebook  # notebooks/_nb.py

CELLS = [
    new_markdown_cell(
        "# Train, evaluate, promote, score\n\n"
        "A topic classifier trained from a labeled Spark table (BBC news, a small real sample), two versions "
        "registered in MLflow, evaluated on the same held-out rows, the better one promoted to `@champion` only "
        "if it wins by the margin, then used by the `classify` UDF. The notebook only calls `jobs.*` / `udfs.*`."),
    install_cell(),
    *parameter_cells(workdir=WORKDIR),
    new_code_cell(SETUP_SOURCE),
    new_markdown_cell("A labeled table: 20 articles per topic, with a `text` and a `label` column."),
    new_code_cell(
        "from udfs.io.datasets import bbc_news\n"
        "news = bbc_news().groupby('label').sample(20, random_state=0)[['id', 'text', 'label']]\n"
        "news.to_parquet(work / 'bbc.parquet', index=False)\n"
        "news['label'].value_counts()"),
    new_markdown_cell(
        "## Train two versions\n"
        "`method: head` embeds every row with the distributed `embed` UDF and fits a head on the driver. "
        "The held-out split is stratified and deterministic (same `seed`, same rows), so both versions are "
        "measured on the same articles. The first version of a model also becomes `@champion`; later ones "
        "only get `@candidate`. Each run logs params, metrics, the per-class report and a confusion matrix."),
    new_code_cell(
        "from jobs.train_classifier import parse_train_job, run as train_run\n"
        "from udfs.training.train import result_summary\n"
        "base = {'input': {'path': str(work / 'bbc.parquet')}, 'label_column': 'label', 'task': 'classify',\n"
        "        'test_fraction': 0.3, 'seed': 7, 'register': {'name': 'notebook-topics'}}\n"
        "weak = train_run(parse_train_job({**base, 'head': {'hidden': 0, 'epochs': 1, 'learning_rate': 0.001}}), spark=spark)\n"
        "strong = train_run(parse_train_job({**base, 'head': {'hidden': 0, 'epochs': 100, 'learning_rate': 0.01}}), spark=spark)\n"
        "result_summary(weak)['metrics'], result_summary(strong)['metrics'], strong.aliases"),
    new_markdown_cell("The held-out confusion matrix of the second version (also in its MLflow run):"),
    new_code_cell(
        "import pandas as pd\n"
        "pd.DataFrame(strong.confusion, index=strong.labels, columns=strong.labels)"),
    new_markdown_cell(
        "## Evaluate and promote\n"
        "`jobs.evaluate` scores `@champion` and the candidates with the `classify` UDF on the held-out rows and "
        "moves `@champion` only if the best candidate's macro-F1 beats it by more than `margin`. The decision "
        "is recorded (MLflow run with `decision.json`, tags on the model and versions) either way."),
    new_code_cell(
        "from jobs.evaluate import EvaluateJob, print_summary, run as evaluate_run\n"
        "from jobs.train_classifier import parse_train_job\n"
        "job = EvaluateJob(model='notebook-topics', task='classify', candidates=('models:/notebook-topics@candidate',),\n"
        "                  data=parse_train_job(base), holdout=True, margin=0.01,\n"
        "                  description='the held-out split of the training config')\n"
        "summary = evaluate_run(job, spark=spark)\n"
        "print_summary(summary)"),
    new_code_cell(
        "from udfs.models.registry import client\n"
        "client().get_registered_model('notebook-topics').aliases"),
    new_markdown_cell("## Score new rows with the champion, and zero-shot with labels only"),
    new_code_cell(
        "from udfs import classify\n"
        "new = spark.createDataFrame([\n"
        "    ('The striker scored twice as the club won the cup final.',),\n"
        "    ('Shares fell after the bank reported lower quarterly profits.',),\n"
        "    ('The new phone has a faster chip and a better camera.',),\n"
        "    (None,)], 'text string')\n"
        "topics = ['business', 'entertainment', 'politics', 'sport', 'tech']\n"
        "new.select('text',\n"
        "           classify('text', model='models:/notebook-topics@champion').alias('trained'),\n"
        "           classify('text', labels=topics).alias('zero_shot'))\\\n"
        "   .selectExpr('text', 'trained.label AS trained', 'round(trained.score, 2) AS p', 'trained.model',\n"
        "               'zero_shot.label AS zero_shot', 'trained.error').show(truncate=45)"),
]


if __name__ == "__main__":
    print(f"wrote {write_notebook(CELLS, '02_train_evaluate.ipynb')}")
