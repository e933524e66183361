"""Writes notebooks/05_incremental.ipynb (no outputs). Run: .venv/bin/python notebooks/_build_05.py"""
import nbformat as nbf

from _nb import SETUP_SOURCE, WORKDIR, install_cell, parameter_cells, write_notebook  # notebooks/_nb.py

cells = [
    nbf.v4.new_markdown_cell(
        "# Incremental analysis: each row once per model version\n"
        "A table that grows every day should not be scored again every day. With `output.mode: incremental` the "
        "analyze job (and `udfs.analyze` in Python) reuses a row's result for a task when its id, its text and "
        "the task's model version and options are unchanged, and computes the rest. Day 1 -> analyze; day 2 adds "
        "rows and edits some texts -> only those are computed; an encoder's alias moves -> only the task using "
        "it is computed again."),
    install_cell(),
    *parameter_cells(workdir=WORKDIR, rows=(150, "tweets on day 1"), new_rows=(20, "rows added on day 2"),
                     edited=(5, "texts edited on day 2")),
    nbf.v4.new_code_cell(SETUP_SOURCE),
    nbf.v4.new_markdown_cell(
        "An encoder registered under its own name, so this notebook can move its alias: version 1 reads up to "
        "256 tokens (the weights, parameters and languages are the default embedding model's, multilingual-e5-small)."),
    nbf.v4.new_code_cell(
        "from udfs.models.loading import local_folder\n"
        "from udfs.models.registry import register_folder, resolve\n\n"
        "base = resolve(load_catalog().default_reference('embed'))  # models:/textspark-e5-small@champion\n"
        "def register_encoder(max_tokens):\n"
        "    params = {**base.params, 'max_tokens': max_tokens}\n"
        "    return register_folder('nb-encoder', task='embed', kind=base.kind, params=params,\n"
        "                           weights=local_folder(base) / 'weights', languages=base.languages)\n\n"
        "register_encoder(256)\n"
        "print(resolve('models:/nb-encoder@champion').label)"),
    nbf.v4.new_markdown_cell("## Day 1: every row is new"),
    nbf.v4.new_code_cell(
        "from jobs import analyze\n"
        "from udfs.io.jobconf import parse_job\n"
        "from udfs.io.datasets import tweets\n\n"
        "day1 = tweets().head(rows)[['text']].reset_index(drop=True)\n"
        "day1.insert(0, 'id', range(len(day1)))\n"
        "table = work / 'reviews.parquet'  # the table that grows; the job reads it every day\n"
        "spark.createDataFrame(day1).write.mode('overwrite').parquet(str(table))\n\n"
        "def run_job():\n"
        "    conf = parse_job({\n"
        "        'input': {'path': str(table), 'text_column': 'text', 'id_column': 'id'},\n"
        "        'tasks': [{'task': 'embed', 'column': 'embedding', 'model': 'models:/nb-encoder@champion'},\n"
        "                  {'task': 'language', 'column': 'lang'}],\n"
        "        'output': {'path': str(work / 'analyzed'), 'mode': 'incremental'},\n"
        "    })\n"
        "    summary = analyze.run(conf, spark=spark)\n"
        "    analyze.print_summary(summary)\n"
        "    return {c: (t['computed'], t['reused']) for c, t in summary['incremental']['tasks'].items()}\n\n"
        "counts = run_job()\n"
        "assert counts == {'embedding': (rows, 0), 'lang': (rows, 0)}, counts"),
    nbf.v4.new_markdown_cell("## Day 2: new rows and edited texts; only those are computed"),
    nbf.v4.new_code_cell(
        "import pandas as pd\n\n"
        "more = tweets().iloc[rows:rows + new_rows + edited]['text'].tolist()\n"
        "day2 = day1.copy()\n"
        "day2.loc[:edited - 1, 'text'] = more[:edited]  # the first rows' texts were edited\n"
        "added = pd.DataFrame({'id': range(rows, rows + new_rows), 'text': more[edited:]})\n"
        "day2 = pd.concat([day2, added], ignore_index=True)\n"
        "spark.createDataFrame(day2).write.mode('overwrite').parquet(str(table))\n\n"
        "counts = run_job()\n"
        "assert counts == {'embedding': (new_rows + edited, rows - edited), 'lang': (new_rows + edited, rows - edited)}"),
    nbf.v4.new_markdown_cell(
        "## The encoder's alias moves: only the task using it is computed again\n"
        "Version 2 reads up to 128 tokens; `@champion` moves to it. The language task's model did not change."),
    nbf.v4.new_code_cell(
        "register_encoder(128)\n"
        "print(resolve('models:/nb-encoder@champion').label)\n"
        "counts = run_job()\n"
        "assert counts == {'embedding': (len(day2), 0), 'lang': (0, len(day2))}, counts"),
    nbf.v4.new_markdown_cell(
        "## The same from Python: `udfs.analyze`\n"
        "Given a DataFrame, the task list and the previous output, it returns the new output (what the job runs "
        "inside). Write it somewhere new before it becomes the next `previous`: Spark reads lazily."),
    nbf.v4.new_code_cell(
        "from udfs import analyze as analyze_table\n\n"
        "previous = spark.read.parquet(str(work / 'analyzed'))\n"
        "tasks = [{'task': 'embed', 'column': 'embedding', 'model': 'models:/nb-encoder@champion'},\n"
        "         {'task': 'language', 'column': 'lang'}]\n"
        "new = analyze_table(spark.read.parquet(str(table)), tasks, previous=previous, id_column='id')\n"
        "new.write.mode('overwrite').parquet(str(work / 'analyzed-api'))\n"
        "again = spark.read.parquet(str(work / 'analyzed-api'))\n"
        "assert again.count() == len(day2)\n"
        "again.select('id', 'lang.language', 'lang.model').show(5)"),
]
write_notebook(cells, "05_incremental.ipynb")
