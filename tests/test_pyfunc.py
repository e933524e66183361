"""A registered version as a plain MLflow model: it reads the right column, and it loads where textspark is
not installed (it carries the udfs package as MLflow code)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

TEXTS = ["the match and the goal", "shares and profits"]

NOT_INSTALLED = """
import importlib.util, json, sys
import mlflow.pyfunc, pandas as pd
assert importlib.util.find_spec("udfs") is None, "textspark is importable: the test proves nothing"
model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict(pd.DataFrame({"id": [7, 8], "text": json.loads(sys.argv[2])}))
print("RESULT " + json.dumps([list(map(float, v)) for v in out]))
"""


def test_predict_reads_the_text_column_or_the_only_string_column(tiny_encoder):
    model = mlflow.pyfunc.load_model(tiny_encoder)
    expected = model.predict(TEXTS)
    assert model.predict(pd.DataFrame({"id": [1, 2], "text": TEXTS})) == expected  # not the id column
    assert model.predict(pd.DataFrame({"n": [1, 2], "body": TEXTS})) == expected
    with pytest.raises(ValueError, match=r"a 'text' column, or exactly one string column; got columns "
                                         r"\['title', 'body'\] \(2 of them strings\)"):
        model.predict(pd.DataFrame({"title": TEXTS, "body": TEXTS}))


@pytest.mark.slow  # a second Python process
def test_a_registered_version_loads_where_textspark_is_not_installed(tiny_encoder, tmp_path):
    expected = mlflow.pyfunc.load_model(tiny_encoder).predict(TEXTS)
    site = sysconfig.get_paths()["purelib"]
    # -S: no site module, so no .pth file runs (textspark's editable install is one); the venv's packages
    # stay importable through PYTHONPATH. The working folder is not the checkout.
    env = {**os.environ, "PYTHONPATH": site}
    out = subprocess.run([sys.executable, "-S", "-c", NOT_INSTALLED, tiny_encoder, json.dumps(TEXTS)], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, out.stderr[-3000:]
    np.testing.assert_allclose(json.loads(line.removeprefix("RESULT ")), expected, atol=1e-6)
