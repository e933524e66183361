"""Spark Connect (what Databricks shared clusters and serverless run): the public API over a local Connect
server gives the same rows as a classic session. One Connect server per module, on a free port (another
server on the default 15002 must not matter); its clients run in subprocesses with SPARK_REMOTE pointing at
it, as a user's process would; this process keeps its classic session."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.helpers import assert_frame_equal, free_port
from udfs import embed, register_sql_functions

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["Shares rose after strong profits.", "The match ended in a draw.", None, "   "]

DEFAULT_PORT = 15002  # Spark Connect's: another server may hold it
SERVER = """
import sys
from udfs.platform import get_spark

# what pyspark sets for SPARK_REMOTE=local[N], on the port given
spark = get_spark("local", conf={"spark.master": "local[2]", "spark.connect.grpc.binding.port": sys.argv[1],
                                 "spark.plugins": "org.apache.spark.sql.connect.SparkConnectPlugin",
                                 "spark.sql.artifact.isolation.enabled": "true",
                                 "spark.sql.artifact.isolation.alwaysApplyClassloader": "true"})
sys.stdin.read()  # serves until the test closes stdin
spark.stop()
"""


def _listening(port: int) -> bool:
    with closing(socket.socket()) as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def connect_server(mlflow_registry, tmp_path_factory):
    """A local Spark Connect server (local[2], the local profile's settings) on a free port, for this module's
    clients; returns its ``sc://127.0.0.1:<port>``. While it runs this fixture holds port 15002 itself when
    nothing else does, so the module's tests pass only with 15002 taken."""
    held = socket.socket()
    try:
        held.bind(("127.0.0.1", DEFAULT_PORT))
        held.listen()
    except OSError:  # already taken: the same test
        held.close()
    port = free_port()
    folder = tmp_path_factory.mktemp("connect-server")
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED")}
    env.update(PYSPARK_PYTHON=sys.executable, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    with open(folder / "server.log", "wb") as server_log:
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], cwd=folder, env=env,
                                  stdin=subprocess.PIPE, stdout=server_log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while not _listening(port):
            assert server.poll() is None and time.monotonic() < deadline, \
                (folder / "server.log").read_text(errors="replace")[-3000:]
            time.sleep(1)
        yield f"sc://127.0.0.1:{port}"
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        held.close()


CLIENT = """
import json, sys
from udfs import embed, register_sql_functions
from udfs.platform import get_spark

spark = get_spark("local")
kind = type(spark).__module__
rows = json.loads(sys.argv[1])
df = spark.createDataFrame(rows, "id int, text string")
encoder = sys.argv[2]
out = df.withColumn("v", embed("text", model=encoder)).withColumn("e", embed("text", model=encoder, with_error=True))
register_sql_functions(spark, ["embed"], models={"embed": encoder})
df.createOrReplaceTempView("t")
sql = spark.sql("SELECT id, size(embed(text)) AS dims FROM t")
print("RESULT " + json.dumps({"session": kind,
                              "rows": [r.asDict(recursive=True) for r in out.orderBy("id").collect()],
                              "sql": [r.asDict() for r in sql.orderBy("id").collect()]}))
spark.stop()
"""


@pytest.fixture(scope="module")
def connect_result(tiny_encoder, mlflow_registry, connect_server, tmp_path_factory):
    rows = [[i, t] for i, t in enumerate(TEXTS)]
    env = {**os.environ, "SPARK_REMOTE": connect_server, "PYSPARK_PYTHON": sys.executable}
    out = subprocess.run([sys.executable, "-c", CLIENT, json.dumps(rows), tiny_encoder], cwd=tmp_path_factory.mktemp("c"),
                         env=env, capture_output=True, text=True, timeout=600)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, out.stderr[-3000:]
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.slow  # a Spark Connect server: a second JVM
def test_public_api_over_spark_connect_equals_a_classic_session(spark, tiny_encoder, connect_result):
    assert connect_result["session"] == "pyspark.sql.connect.session"
    df = spark.createDataFrame(list(enumerate(TEXTS)), "id int, text string")
    classic = df.withColumn("v", embed("text", model=tiny_encoder)) \
                .withColumn("e", embed("text", model=tiny_encoder, with_error=True))
    remote = spark.createDataFrame(connect_result["rows"], classic.schema)
    assert_frame_equal(remote, classic, atol=1e-6)
    register_sql_functions(spark, ["embed"], models={"embed": tiny_encoder})
    df.createOrReplaceTempView("t")
    sql = spark.sql("SELECT id, size(embed(text)) AS dims FROM t").orderBy("id").collect()
    assert connect_result["sql"] == [r.asDict() for r in sql]
    assert [r.dims for r in sql[:2]] == [len(classic.first().v)] * 2


# ---- jobs over Spark Connect ------------------------------------------------------------------------
JOB_TEXTS = ["Shares rose after strong profits.", "The match ended in a draw.", None, "   ",
             "Le film a remporté trois prix au festival.", "Die Aktien stiegen nach starken Gewinnen."]
CLUSTER_GROUPS = {"sport": "The match ended in a draw after a late goal.",
                  "business": "Shares rose after the company reported strong profits.",
                  "film": "The film won three awards at the festival."}
JOBS_CLIENT = """
import sys
from pyspark.sql import SparkSession
from jobs import analyze, cluster
codes = [analyze.main(["--conf", sys.argv[1]]), cluster.main(["--conf", sys.argv[2]])]
print("CODES", *codes, flush=True)
# jobs/cluster.py stops only a local[N] Connect session; on a server's (sc://) the fitted models' server-side
# objects hang the interpreter's exit (pyspark 4.3) unless the session is stopped first
SparkSession.getActiveSession().stop()
"""


def _analyze_job(table, out, encoder, language) -> dict:
    return {"spark": {"profile": "local"}, "mlflow": {"experiment": "connect-jobs"},
            "input": {"path": str(table), "format": "parquet", "text_column": "text", "id_column": "id"},
            "tasks": [{"task": "embed", "column": "embedding", "model": encoder},
                      {"task": "language", "column": "lang", "model": language}],
            "output": {"path": str(out), "format": "parquet", "mode": "overwrite"}}


@pytest.fixture(scope="module")
def connect_jobs(tiny_encoder, mlflow_registry, connect_server, tmp_path_factory):
    """jobs/analyze.py and jobs/cluster.py run by their command-line entry points in one client process with
    SPARK_REMOTE at the module's Connect server: what a user's shell would run."""
    import pandas as pd
    import yaml

    from tests.helpers import register_catalog_entry

    language = register_catalog_entry("textspark-lid176")
    folder = tmp_path_factory.mktemp("connect-jobs")
    table = folder / "texts.parquet"
    pd.DataFrame({"id": range(len(JOB_TEXTS)), "text": JOB_TEXTS}).to_parquet(table, index=False)
    rows = [{"id": f"{g}-{i}", "text": t, "label": g} for g, t in CLUSTER_GROUPS.items() for i in range(4)]
    rows.append({"id": "null", "text": None, "label": None})
    cluster_table = folder / "cluster.parquet"
    pd.DataFrame(rows).to_parquet(cluster_table, index=False)
    confs = {"analyze": _analyze_job(table, folder / "analyze-connect", tiny_encoder, language),
             "cluster": {"spark": {"profile": "local"}, "mlflow": {"experiment": "connect-jobs"},
                         "input": {"path": str(cluster_table), "id_column": "id", "text_column": "text"},
                         "output": {"path": f"file://{folder / 'cluster-connect'}"},  # a file: URI too
                         "k": 3, "embedding_model": tiny_encoder, "label_column": "label",
                         "name": "connect-clusters", "examples": 2}}
    for name, conf in confs.items():
        (folder / f"{name}.yml").write_text(yaml.safe_dump(conf))
    env = {**os.environ, "SPARK_REMOTE": connect_server, "PYSPARK_PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", JOBS_CLIENT, str(folder / "analyze.yml"), str(folder / "cluster.yml")],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    codes = next((x for x in done.stdout.splitlines() if x.startswith("CODES ")), None)
    assert codes == "CODES 0 0", (done.stdout[-3000:], done.stderr[-3000:])
    return {"folder": folder, "table": table, "encoder": tiny_encoder, "language": language, "stdout": done.stdout}


@pytest.mark.slow  # a Spark Connect server: a second JVM
@pytest.mark.real  # the shipped language model (lid.176)
def test_analyze_job_over_spark_connect_writes_what_a_classic_session_writes(spark, connect_jobs):
    import mlflow

    from jobs.analyze import run
    from udfs.io.jobconf import parse_job
    from udfs.io.commit import MANIFEST

    folder = connect_jobs["folder"]
    remote_out = folder / "analyze-connect"
    classic_out = folder / "analyze-classic"
    run(parse_job(_analyze_job(connect_jobs["table"], classic_out, connect_jobs["encoder"],
                               connect_jobs["language"])), spark=spark)
    remote, classic = spark.read.parquet(str(remote_out)), spark.read.parquet(str(classic_out))
    assert remote.columns == ["id", "text", "embedding", "embedding_error", "lang"]
    assert_frame_equal(remote, classic, atol=1e-6)
    assert remote.count() == len(JOB_TEXTS)
    manifest = json.loads((remote_out / MANIFEST).read_text())
    assert (manifest["rows"], manifest["output_rows"], manifest["spark_master"]) == (len(JOB_TEXTS), len(JOB_TEXTS),
                                                                                      "local[2]")
    assert [(t["column"], t["null_with_reason"]) for t in manifest["tasks"]] == [("embedding", 2), ("lang", 2)]
    assert sorted(os.listdir(folder)) == sorted(["analyze-classic", "analyze-connect", "analyze.yml", "cluster-connect",
                                                 "cluster.parquet", "cluster.yml", "texts.parquet"])  # no staging
    experiment = mlflow.get_experiment_by_name("connect-jobs")
    runs = mlflow.search_runs([experiment.experiment_id], filter_string="tags.`textspark.job` = 'analyze'",
                              output_format="list")
    logged = {r.data.params["output"]: r.data.metrics for r in runs}
    wall = {k: v for k, v in logged[str(remote_out)].items() if k.startswith("wall.")}  # the job's wall split
    assert {k: v for k, v in logged[str(remote_out)].items() if k not in wall} == {
        "rows": len(JOB_TEXTS), "output_rows": len(JOB_TEXTS), "seconds": manifest["seconds"], "errors.embedding": 2,
        "errors.lang": 2, "rows_per_language.en": 2, "rows_per_language.fr": 1, "rows_per_language.de": 1}
    assert wall == {f"wall.{k}": v for k, v in manifest["wall"].items() if isinstance(v, (int, float))}
    assert manifest["costs"] == {}  # no accumulators over Spark Connect: no per-task costs


@pytest.mark.slow
@pytest.mark.real
def test_cluster_job_over_spark_connect_commits_its_tables_plot_and_manifest(spark, connect_jobs):
    from udfs.io.commit import MANIFEST

    out = connect_jobs["folder"] / "cluster-connect"
    assert sorted(os.listdir(out)) == ["_projection.png", MANIFEST, "assignments", "clusters"]
    assert (out / "_projection.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads((out / MANIFEST).read_text())
    assert (manifest["k"], manifest["rows"], manifest["rows_assigned"], manifest["null_with_reason"],
            manifest["nmi"], manifest["purity"]) == (3, 13, 12, 1, 1.0, 1.0)
    rows = spark.read.parquet(str(out / "assignments")).collect()
    by_group: dict[str, set] = {}
    for row in rows:
        by_group.setdefault(row.id.split("-")[0], set()).add(row.cluster)
    assert by_group == {"null": {None}, **{g: by_group[g] for g in CLUSTER_GROUPS}}
    assert sorted(len(c) for g, c in by_group.items() if g != "null") == [1, 1, 1]
    assert len({next(iter(by_group[g])) for g in CLUSTER_GROUPS}) == 3


def _fake_connect_session(host: str):
    """Stands for a Spark Connect session on ``host`` (what storage reads of it: its class and client.host)."""
    from types import SimpleNamespace

    session = type("SparkSession", (), {"__module__": "pyspark.sql.connect.session"})()
    session.client = SimpleNamespace(host=host)
    return session


def test_over_connect_local_paths_on_a_local_server_commit_on_disk_and_other_outputs_are_refused(tmp_path):
    from udfs.errors import InputError
    from udfs.io.sections import OutputConf
    from udfs.io.output import Output
    from udfs.io.storage import LocalStorage, connect_problem, storage_for

    local, remote = _fake_connect_session("localhost"), _fake_connect_session("cluster.example.com")
    assert connect_problem(str(tmp_path / "out"), local) is None
    assert isinstance(storage_for(f"file://{tmp_path}/out", local), LocalStorage)
    storage_for(f"file://{tmp_path}/out", local).write(f"file:{tmp_path}/small.json", b"{}")
    assert (tmp_path / "small.json").read_bytes() == b"{}"
    refused = ("over Spark Connect (server {}) a job commits only local paths (no scheme, or file:) with a Connect "
               "server on this machine (SPARK_REMOTE=local[N] or sc://localhost): the atomic commit renames and "
               "deletes files, which a Connect client cannot do on the server's filesystem; run the job with a JVM "
               "driver (spark-submit, a Databricks job cluster) for this output")
    assert connect_problem("s3a://bucket/out", local) == refused.format("localhost")
    assert connect_problem(str(tmp_path / "out"), remote) == refused.format("cluster.example.com")
    output = Output(OutputConf(path=str(tmp_path / "out")), source="job.yml")
    with pytest.raises(InputError) as caught:
        output.bind(remote)
    assert str(caught.value) == f"job.yml: output.path: got '{tmp_path}/out'; " + refused.format("cluster.example.com")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.json"]  # nothing left next to the output


def test_gpu_checks_read_the_session_settings_through_spark_conf_alone():
    """check_cluster_conf needs only ``spark.conf`` (a Connect session has no sparkContext)."""
    from types import SimpleNamespace

    from udfs.errors import ConfigError
    from udfs.runtime.scheduling import EXECUTOR_GPUS_KEY, check_cluster_conf, parse_inference

    def session(settings: dict):
        return SimpleNamespace(conf=SimpleNamespace(get=lambda key, default=None: settings.get(key, default)))

    wanted = parse_inference({"gpus_per_task": 1, "check_discovery": False})
    cluster = {"spark.master": "spark://host:7077", EXECUTOR_GPUS_KEY: "2"}
    assert check_cluster_conf(session(cluster), wanted) is True
    assert check_cluster_conf(session({**cluster, "spark.dynamicAllocation.enabled": "true"}), wanted) is False
    with pytest.raises(ConfigError, match=rf"{EXECUTOR_GPUS_KEY}: got None; allowed: a number of GPUs per executor"):
        check_cluster_conf(session({"spark.master": "yarn"}), wanted)


# ---- the session's settings over Spark Connect; the module's server port ------------------------------
SETTINGS_CLIENT = """
import json
from udfs.platform import get_spark

spark = get_spark("local", conf={"spark.sql.shuffle.partitions": 3, "spark.ui.enabled": False,
                                 "spark.driver.memory": "1g", "spark.sql.session.timeZone": "Europe/Lisbon"})
print("RESULT " + json.dumps([spark.conf.get(k) for k in ("spark.sql.shuffle.partitions", "spark.sql.session.timeZone",
                                                          "spark.ui.enabled", "spark.master")]))
spark.stop()
"""


@pytest.mark.slow  # a Spark Connect server: a second JVM (the module's)
def test_get_spark_over_connect_sets_what_it_can_and_names_the_rest_in_one_line(connect_server, tmp_path):
    """The server refuses static settings: no CANNOT_MODIFY_CONFIG error per key on stderr, one line naming
    the skipped keys; the runtime settings are set."""
    env = {**os.environ, "SPARK_REMOTE": connect_server, "PYSPARK_PYTHON": sys.executable}
    out = subprocess.run([sys.executable, "-c", SETTINGS_CLIENT], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, out.stderr[-3000:]
    # set: the two runtime settings; the server's own: its UI (off, as the profile started it) and master
    assert json.loads(line.removeprefix("RESULT ")) == ["3", "Europe/Lisbon", "false", "local[2]"]
    assert "CANNOT_MODIFY_CONFIG" not in out.stderr
    assert [x for x in out.stderr.splitlines() if "skipped" in x] == [
        f"Spark Connect session {connect_server}: skipped spark.driver.memory, spark.ui.enabled (static settings: the "
        "server fixed them when it started; set them where it is launched)"], out.stderr[-3000:]


def test_free_port_is_a_port_a_server_can_bind():
    port = free_port()
    assert port != DEFAULT_PORT and not _listening(port)
    with closing(socket.socket()) as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        assert _listening(port)


@pytest.mark.slow  # a Spark Connect server: a second JVM (the module's)
def test_the_connect_server_listens_on_its_own_port_while_15002_is_taken(connect_server):
    port = int(connect_server.rpartition(":")[2])
    assert connect_server == f"sc://127.0.0.1:{port}" and port != DEFAULT_PORT
    assert _listening(DEFAULT_PORT) and _listening(port)
