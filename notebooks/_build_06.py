"""Writes notebooks/06_shadow.ipynb (no outputs). Run: .venv/bin/python notebooks/_build_06.py"""
import nbformat as nbf

from _nb import SETUP_SOURCE, WORKDIR, install_cell, parameter_cells, write_notebook  # notebooks/_nb.py

cells = [
    nbf.v4.new_markdown_cell(
        "# Know before you promote: shadow scoring\n"
        "A new version of a model can win on a held-out metric and still answer differently on the rows you "
        "actually score. The shadow job scores one table with the task's `@champion` and a challenger in one pass "
        "(two heads on one encoder share its forward pass), writes the diff table (both results, `flipped`, "
        "`score_delta`) and a report (flip rate overall, per class and per language, the confusion matrix between "
        "the two versions). The evaluate job's `gate` reads that report: `@champion` moves only to the challenger "
        "the report compared, and only when its flip rate is within the limit."),
    install_cell(),
    *parameter_cells(workdir=WORKDIR, champion_rows=(60, "tweets the first version (the champion) is trained on"),
                     challenger_rows=(150, "tweets the second version (the challenger) is trained on"),
                     shadow_rows=(60, "tweets scored by both versions"),
                     max_flip_rate=(0.05, "the gate: the highest share of rows whose label may change")),
    nbf.v4.new_code_cell(SETUP_SOURCE),
    nbf.v4.new_markdown_cell(
        "## Two versions of a sentiment head\n"
        "Both are heads on the default encoder (multilingual-e5-small) trained with `udfs.training.train` on "
        "real tweets: version 1 on a few rows (it becomes `@champion`: the model has none yet), version 2 on more "
        "(`@candidate`). Both record that they read English, so the language guard checks each row."),
    nbf.v4.new_code_cell(
        "from udfs.io.datasets import tweets\n"
        "from udfs.training.settings import TrainSettings\n"
        "from udfs.training.train import train\n\n"
        "rows = tweets().sample(frac=1.0, random_state=0).reset_index(drop=True)\n"
        "shadow_table = rows.iloc[:shadow_rows][['id', 'text', 'label']]   # scored by both, never trained on\n"
        "def train_version(frame):\n"
        "    s = TrainSettings(name='nb-sentiment', task='sentiment',\n"
        "                      base_model='models:/textspark-e5-small@champion',\n"
        "                      test_fraction=0.2, seed=7, head={'hidden': 0, 'epochs': 60, 'learning_rate': 0.01},\n"
        "                      languages=['en'])\n"
        "    return train(spark.createDataFrame(frame[['text', 'label']]), s)\n\n"
        "first = train_version(rows.iloc[shadow_rows:shadow_rows + champion_rows])\n"
        "second = train_version(rows.iloc[shadow_rows + champion_rows:shadow_rows + champion_rows + challenger_rows])\n"
        "first.uri, second.uri, second.aliases"),
    nbf.v4.new_markdown_cell(
        "## The diff, from Python\n"
        "`udfs.shadow` returns the diff DataFrame: the id, the row's language (the models are guarded), both "
        "result structs, `flipped` (the labels differ) and `score_delta` (the challenger's score for the "
        "champion's label minus the champion's)."),
    nbf.v4.new_code_cell(
        "from udfs import shadow\n\n"
        "df = spark.createDataFrame(shadow_table)\n"
        "diff = shadow(df, task='sentiment', champion='models:/nb-sentiment@champion',\n"
        "              challenger='models:/nb-sentiment@candidate', id_column='id')\n"
        "diff.selectExpr('id', 'language', 'champion.label AS champion', 'challenger.label AS challenger', 'flipped',\n"
        "                'round(score_delta, 3) AS score_delta').show(8)"),
    nbf.v4.new_markdown_cell(
        "## The shadow job: the diff table, its report and an MLflow run\n"
        "The same as `python -m jobs.shadow --conf shadow.yml` (or `textspark shadow --conf shadow.yml`) with "
        "this configuration. The report is the output's manifest (with each model's cost); the confusion matrix is "
        "also a figure in the output folder and in the run."),
    nbf.v4.new_code_cell(
        "import pandas as pd\n"
        "from jobs import shadow as shadow_job\n"
        "from udfs.io.shadowconf import parse_shadow\n\n"
        "shadow_table.to_parquet(work / 'tweets.parquet', index=False)\n"
        "conf = parse_shadow({'input': {'path': str(work / 'tweets.parquet'), 'id_column': 'id'},\n"
        "                     'task': 'sentiment', 'challenger': 'models:/nb-sentiment@candidate',\n"
        "                     'champion': 'models:/nb-sentiment@champion', 'output': {'path': str(work / 'shadow')}})\n"
        "report = shadow_job.run(conf, spark=spark)\n"
        "shadow_job.print_summary(report)\n"
        "c = report['confusion']\n"
        "pd.DataFrame(c['counts'], index=[f'champion {x}' for x in c['labels']],\n"
        "             columns=[f'challenger {x}' for x in c['labels']])"),
    nbf.v4.new_markdown_cell(
        "## The report on the challenger's page\n"
        "The challenger version links to the logged model it was registered from (its `models:/m-...` source). "
        "The job logs the report's numbers (`shadow.flip_rate`, per class and per language, ...) with that "
        "model's id, so they show on its page in the MLflow UI beside the run that measured them, and tags both the "
        "version and the logged model with `textspark.shadow`: the run, the report and the `runs:/` URIs of "
        "the report and the confusion figure. (`python -m jobs.shadow --conf shadow.yml --plan` estimates such a "
        "run's time from the costs earlier runs recorded, before anything runs.)"),
    nbf.v4.new_code_cell(
        "import json\n"
        "from udfs.models.registry import client\n\n"
        "model = client().get_logged_model(report['challenger_model_id'])\n"
        "print({m.key: round(m.value, 4) for m in model.metrics})\n"
        "json.loads(model.tags['textspark.shadow'])"),
    nbf.v4.new_markdown_cell(
        "## A promotion decided by the report\n"
        "`jobs.evaluate` measures both versions on labeled rows (tweets neither was trained on) and would move "
        "`@champion` when the candidate wins; with `gate` it also needs the shadow report to be for this "
        "candidate and its flip rate to be at most `max_flip_rate`."),
    nbf.v4.new_code_cell(
        "from jobs import evaluate\n"
        "from udfs.models.registry import resolve\n\n"
        "held_out = rows.iloc[-60:][['id', 'text', 'label']]\n"
        "held_out.to_parquet(work / 'held_out.parquet', index=False)\n"
        "def decide(limit):\n"
        "    job = evaluate.parse_evaluate_job({'model': 'nb-sentiment', 'task': 'sentiment',\n"
        "                                       'input': {'path': str(work / 'held_out.parquet')},\n"
        "                                       'gate': {'shadow_report': str(work / 'shadow'),\n"
        "                                                'max_flip_rate': limit}})\n"
        "    summary = evaluate.run(job, spark=spark)\n"
        "    evaluate.print_summary(summary)\n"
        "    return summary\n\n"
        "strict = decide(max_flip_rate)\n"
        "gate_passes = report['flip_rate'] <= max_flip_rate\n"
        "assert strict['gate']['passed'] == gate_passes\n"
        "assert strict['decision']['applied'] == (gate_passes and strict['decision']['promoted'])\n"
        "print('@champion is version', resolve('models:/nb-sentiment@champion').version)"),
    nbf.v4.new_markdown_cell(
        "With a limit above this report's flip rate the gate passes, and the evaluation alone decides:"),
    nbf.v4.new_code_cell(
        "loose = decide(min(1.0, round(report['flip_rate'] + 0.05, 2)))\n"
        "assert loose['gate']['passed']\n"
        "assert loose['decision']['applied'] == loose['decision']['promoted']\n"
        "print('@champion is version', resolve('models:/nb-sentiment@champion').version)"),
]
write_notebook(cells, "06_shadow.ipynb")
