"""Build notebooks/03_clustering.ipynb (no outputs): python notebooks/_build_03.py"""
from nbformat.v4 import new_code_cell, new_markdown_cell

from _nb import SETUP_SOURCE, WORKDIR, install_cell, parameter_cells, write_notebook  # notebooks/_nb.py

CELLS = [
    new_markdown_cell(
        "# Clustering: themes in BBC news without labels\n\n"
        "Embeddings from the default catalog model (distributed `embed` UDF), joined to TF-IDF + LSA features "
        "of the same texts where they help (`lexical_weight: auto`, the default: decided from how many text "
        "pairs share a term; the summary says why) -> Spark MLlib k-means (cosine) "
        "-> clusters named by class-based TF-IDF keywords, with the texts closest to each centroid. "
        "The fit is logged to MLflow and registered, so new rows are assigned later without refitting. "
        "Everything here calls `jobs.cluster` / `udfs.clustering`; the notebook holds no logic."),
    install_cell(),
    *parameter_cells(workdir=WORKDIR),
    new_code_cell(SETUP_SOURCE),
    new_markdown_cell("A small real sample: 8 articles per topic (each embedded as the mean of its 150-word windows "
                      "by the multilingual default encoder). The `label` column is only used to score the result "
                      "(NMI, purity); the fit never sees it."),
    new_code_cell(
        "from udfs.io.datasets import bbc_news\n"
        "news = bbc_news().groupby('label').sample(8, random_state=0)[['id', 'text', 'label']]\n"
        "news.to_parquet(work / 'bbc.parquet', index=False)\n"
        "news['label'].value_counts()"),
    new_markdown_cell("## Fit\n\n`k: 5` here; give `k_range: [lo, hi]` instead to choose k on a sample "
                      "(`sample_size` rows) by stability across resamples (`k_selection: stability`, the default), "
                      "as `conf/jobs/cluster_sample.yml` does."),
    new_code_cell(
        "from jobs.cluster import parse_cluster_job, print_summary, run\n"
        "job = {\n"
        "    'input': {'path': str(work / 'bbc.parquet'), 'id_column': 'id', 'text_column': 'text'},\n"
        "    'k': 5, 'label_column': 'label', 'name': 'notebook-bbc-topics',\n"
        "    'output': {'path': str(work / 'clusters')},\n"
        "}\n"
        "summary = run(*parse_cluster_job(job), spark=spark)\n"
        "print_summary(summary)"),
    new_markdown_cell("The 2-D projection (PCA of a sample of the vectors k-means saw, coloured by cluster; "
                      "also logged to the MLflow run as `projection.png`):"),
    new_code_cell(
        "from IPython.display import Image\n"
        "Image(filename=str(work / 'clusters' / '_projection.png'))"),
    new_markdown_cell("## The cluster table"),
    new_code_cell(
        "import pandas as pd\n"
        "pd.set_option('display.max_colwidth', 120)\n"
        "clusters = spark.read.parquet(str(work / 'clusters' / 'clusters')).orderBy('cluster').toPandas()\n"
        "clusters.assign(keywords=clusters.keywords.map(', '.join), example=clusters.examples.str[0])"
        "[['cluster', 'size', 'keywords', 'example']]"),
    new_markdown_cell("Every input row has an assignment (id, cluster, distance to the centroid; a null "
                      "cluster with a reason where a row has no text):"),
    new_code_cell(
        "assignments = spark.read.parquet(str(work / 'clusters' / 'assignments'))\n"
        "assignments.orderBy('distance').show(5, truncate=40)\n"
        "assignments.join(spark.read.parquet(str(work / 'bbc.parquet')), 'id')"
        ".groupBy('cluster').pivot('label').count().orderBy('cluster').show()"),
    new_markdown_cell("## Assign new rows to the registered clusters (no refit)"),
    new_code_cell(
        "new = pd.DataFrame({'id': ['n1', 'n2', 'n3'], 'text': [\n"
        "    'The striker scored twice as the club won the cup final.',\n"
        "    'Parliament will vote on the new tax bill next week, the minister said.',\n"
        "    None]})\n"
        "new.to_parquet(work / 'new.parquet', index=False)\n"
        "assign_job = {'input': {'path': str(work / 'new.parquet'), 'id_column': 'id'},\n"
        "              'mode': 'assign', 'model': 'models:/notebook-bbc-topics@champion',\n"
        "              'output': {'path': str(work / 'assigned')}}\n"
        "run(*parse_cluster_job(assign_job), spark=spark)\n"
        "named = spark.read.parquet(str(work / 'clusters' / 'clusters')).select('cluster', 'keywords')\n"
        "spark.read.parquet(str(work / 'assigned' / 'assignments')).join(named, 'cluster', 'left')"
        ".select('id', 'cluster', 'distance', 'error', 'keywords').orderBy('id').show(truncate=70)"),
]


if __name__ == "__main__":
    print(f"wrote {write_notebook(CELLS, '03_clustering.ipynb')}")
