"""Sail 0.7.2 (tests/sail.py) as the Delta/Iceberg engine the tests can use (issue 27): from this venv's pyspark
4.3 Connect client, Delta and Iceberg tables are created, appended to and merged into, read back exactly, keep
their history and properties in their logs, travel in time; Python Arrow UDFs, mapInArrow and textspark's own
``detect_language`` run on the server's Python.

``test_known_gaps`` pins what 0.7.2 refuses, with its error, so a pysail upgrade that closes a gap shows up.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyspark.sql import functions as F

from tests.helpers import assert_frame_equal, register_catalog_entry
from tests.sail import connect_session, default_venv_folder, sail_remote  # noqa: F401 - a fixture

pytestmark = pytest.mark.slow

SCHEMA = "id bigint, text string"
BEFORE = [(1, "one"), (2, "two"), (3, "three"), (4, "four")]
SOURCE = [(1, "one"), (2, "TWO"), (3, "THREE"), (5, "five")]  # 1 unchanged, 2 and 3 changed, 5 new; 4 absent
AFTER = [(1, "one"), (2, "TWO"), (3, "THREE"), (5, "five")]
# Updates the 2 changed rows, inserts the new one, deletes the one the source lacks.
MERGE = """MERGE INTO {table} t USING source s ON t.id = s.id
WHEN MATCHED AND t.text <> s.text THEN UPDATE SET *
WHEN NOT MATCHED THEN INSERT *
WHEN NOT MATCHED BY SOURCE THEN DELETE"""


@pytest.fixture(scope="module")
def sail(sail_remote, tmp_path_factory):
    """A Connect session on the Sail server, its warehouse in a temporary folder."""
    with connect_session(sail_remote, warehouse=tmp_path_factory.mktemp("sail-warehouse")) as session:
        session.createDataFrame(SOURCE, SCHEMA).createOrReplaceTempView("source")
        yield session


def frame(session, rows, schema=SCHEMA):
    return session.createDataFrame(rows, schema)


def delta_commits(location: Path) -> list[dict]:
    """The commitInfo of every commit in the table's ``_delta_log``, oldest first (what DESCRIBE HISTORY
    shows on Databricks; Sail 0.7.2 does not parse DESCRIBE HISTORY)."""
    commits = []
    for path in sorted((location / "_delta_log").glob("*.json")):
        actions = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        commits.append({key: value for action in actions for key, value in action.items()
                        if key in ("commitInfo", "metaData")})
    return commits


def iceberg_metadata(location: Path) -> dict:
    """The table's newest ``metadata/v<N>.metadata.json``."""
    return json.loads(max((location / "metadata").glob("v*.metadata.json"),
                          key=lambda p: int(p.name[1:].split(".")[0])).read_text())


def test_delta_create_append_merge_history_properties_time_travel(sail, tmp_path):
    location = tmp_path / "reviews"
    sail.sql(f"CREATE TABLE reviews_delta (id BIGINT, text STRING) USING delta LOCATION '{location}' "
             "TBLPROPERTIES ('textspark.owner' = 'tests')").collect()
    frame(sail, BEFORE[:2]).writeTo("reviews_delta").append()
    frame(sail, BEFORE[2:]).writeTo("reviews_delta").append()
    assert_frame_equal(sail.table("reviews_delta"), frame(sail, BEFORE))

    assert sail.sql(MERGE.format(table="reviews_delta")).collect()[0][0] == 4  # rows touched (Sail's count)
    assert_frame_equal(sail.table("reviews_delta"), frame(sail, AFTER))
    sail.sql("ALTER TABLE reviews_delta SET TBLPROPERTIES ('textspark.model' = 'textspark-lid176/1')").collect()

    commits = delta_commits(location)
    assert [c["commitInfo"]["operation"] for c in commits] == \
        ["CREATE TABLE", "WRITE", "WRITE", "MERGE", "SET TBLPROPERTIES"]
    merge = commits[3]["commitInfo"]["operationMetrics"]
    assert {k: merge[k] for k in ("numSourceRows", "numTargetRowsUpdated", "numTargetRowsMatchedUpdated",
                                  "numTargetRowsInserted", "numTargetRowsDeleted",
                                  "numTargetRowsNotMatchedBySourceDeleted", "numTargetRowsMatchedDeleted")} == \
        {"numSourceRows": 4, "numTargetRowsUpdated": 2, "numTargetRowsMatchedUpdated": 2,
         "numTargetRowsInserted": 1, "numTargetRowsDeleted": 1, "numTargetRowsNotMatchedBySourceDeleted": 1,
         "numTargetRowsMatchedDeleted": 0}
    assert commits[-1]["metaData"]["configuration"] == {"textspark.owner": "tests",
                                                         "textspark.model": "textspark-lid176/1"}

    # time travel: version 2 is the table before the MERGE, by name and by path
    assert_frame_equal(sail.sql("SELECT * FROM reviews_delta VERSION AS OF 2"), frame(sail, BEFORE))
    assert_frame_equal(sail.read.format("delta").option("versionAsOf", 1).load(str(location)),
                       frame(sail, BEFORE[:2]))
    assert_frame_equal(sail.sql(f"SELECT * FROM delta.`{location}` VERSION AS OF 3"), frame(sail, AFTER))


def test_delta_writer_v2_save_as_table_and_paths(sail, tmp_path):
    one, two = frame(sail, BEFORE[:2]), frame(sail, BEFORE[2:])
    one.writeTo("writer_delta").using("delta").tableProperty("textspark.owner", "tests").create()
    two.writeTo("writer_delta").append()
    assert_frame_equal(sail.table("writer_delta"), frame(sail, BEFORE))
    two.writeTo("writer_delta").using("delta").createOrReplace()
    assert_frame_equal(sail.table("writer_delta"), two)
    one.writeTo("writer_delta").using("delta").replace()
    assert_frame_equal(sail.table("default.writer_delta"), one)  # the session's catalog is "sail"
    assert_frame_equal(sail.table("sail.default.writer_delta"), one)

    one.write.format("delta").saveAsTable("saved_delta")
    two.write.format("delta").mode("append").saveAsTable("saved_delta")
    assert_frame_equal(sail.table("saved_delta"), frame(sail, BEFORE))
    sail.sql("CREATE TABLE managed_delta (id BIGINT, text STRING) USING delta").collect()  # in the warehouse
    sail.sql("INSERT INTO managed_delta VALUES (1, 'one'), (2, 'two')").collect()
    assert_frame_equal(sail.table("managed_delta"), one)

    path = str(tmp_path / "by_path")
    one.write.format("delta").save(path)
    two.write.format("delta").mode("append").save(path)
    assert_frame_equal(sail.read.format("delta").load(path), frame(sail, BEFORE))
    two.write.format("delta").mode("overwrite").save(path)
    assert_frame_equal(sail.sql(f"SELECT * FROM delta.`{path}`"), two)


def test_a_table_is_known_to_its_session_only_and_comes_back_by_location(sail, sail_remote, tmp_path):
    """Sail's catalog is in memory and per Connect session: another session (another job) finds a table again
    through its location, with its data and schema."""
    location = tmp_path / "shared"
    sail.sql(f"CREATE TABLE shared_delta USING delta LOCATION '{location}' AS "
             "SELECT * FROM VALUES (1L, 'one'), (2L, 'two') AS v(id, text)").collect()
    with connect_session(sail_remote) as other:
        assert not other.catalog.tableExists("shared_delta")
        other.sql(f"CREATE TABLE shared_delta USING delta LOCATION '{location}'").collect()  # no schema given
        assert_frame_equal(other.table("shared_delta"), frame(other, BEFORE[:2]))
    assert_frame_equal(sail.table("shared_delta"), frame(sail, BEFORE[:2]))  # the first session is unaffected


def test_iceberg_create_append_merge_snapshots_properties_time_travel(sail, tmp_path):
    location = tmp_path / "reviews"
    sail.sql(f"CREATE TABLE reviews_iceberg (id BIGINT, text STRING) USING iceberg LOCATION '{location}' "
             "TBLPROPERTIES ('textspark.owner' = 'tests')").collect()
    frame(sail, BEFORE[:2]).writeTo("reviews_iceberg").append()
    frame(sail, BEFORE[2:]).writeTo("reviews_iceberg").append()
    assert_frame_equal(sail.table("reviews_iceberg"), frame(sail, BEFORE))

    sail.sql(MERGE.format(table="reviews_iceberg")).collect()
    assert_frame_equal(sail.table("reviews_iceberg"), frame(sail, AFTER))
    sail.sql("ALTER TABLE reviews_iceberg SET TBLPROPERTIES ('textspark.model' = 'textspark-lid176/1')").collect()

    meta = iceberg_metadata(location)
    assert meta["properties"] == {"textspark.owner": "tests", "textspark.model": "textspark-lid176/1"}
    snapshots = meta["snapshots"]
    summaries = [{k: s["summary"].get(k) for k in ("operation", "added-records", "deleted-records", "total-records")}
                 for s in snapshots]
    # Iceberg's summary has no per-clause counts: the MERGE is an overwrite that rewrote both data files
    assert summaries == [
        {"operation": "append", "added-records": "2", "deleted-records": None, "total-records": "2"},
        {"operation": "append", "added-records": "2", "deleted-records": None, "total-records": "4"},
        {"operation": "overwrite", "added-records": "4", "deleted-records": "4", "total-records": "4"},
    ]
    assert meta["current-snapshot-id"] == snapshots[-1]["snapshot-id"]
    before_merge = snapshots[1]["snapshot-id"]
    assert_frame_equal(sail.sql(f"SELECT * FROM reviews_iceberg VERSION AS OF {before_merge}"), frame(sail, BEFORE))
    assert_frame_equal(sail.read.format("iceberg").option("snapshot-id", snapshots[0]["snapshot-id"])
                       .load(str(location)), frame(sail, BEFORE[:2]))


def test_iceberg_writer_v2_and_save_as_table(sail, tmp_path):
    one, two = frame(sail, BEFORE[:2]), frame(sail, BEFORE[2:])
    one.writeTo("writer_iceberg").using("iceberg").create()
    two.writeTo("writer_iceberg").append()
    assert_frame_equal(sail.table("writer_iceberg"), frame(sail, BEFORE))
    two.writeTo("writer_iceberg").using("iceberg").createOrReplace()
    assert_frame_equal(sail.table("writer_iceberg"), two)
    one.writeTo("writer_iceberg").overwritePartitions()  # unpartitioned: replaces everything
    assert_frame_equal(sail.table("writer_iceberg"), one)

    one.write.format("iceberg").saveAsTable("saved_iceberg")
    two.write.format("iceberg").mode("append").saveAsTable("saved_iceberg")
    assert_frame_equal(sail.table("saved_iceberg"), frame(sail, BEFORE))
    sail.sql("CREATE TABLE managed_iceberg (id BIGINT, text STRING) USING iceberg").collect()
    sail.sql("INSERT INTO managed_iceberg VALUES (3, 'three'), (4, 'four')").collect()
    assert_frame_equal(sail.table("managed_iceberg"), two)

    path = str(tmp_path / "by_path")
    one.write.format("iceberg").save(path)
    two.write.format("iceberg").mode("append").save(path)
    assert_frame_equal(sail.read.format("iceberg").load(path), frame(sail, BEFORE))


def test_python_arrow_udfs_and_map_in_arrow_run_in_the_sail_venv(sail):
    df = frame(sail, [(1, "hello world"), (2, None), (3, "olá mundo")])

    @F.arrow_udf("long")  # the hints are read from this module's globals (annotations are strings here)
    def arrow_length(texts: pa.Array) -> pa.Array:
        return pc.utf8_length(texts)

    @F.pandas_udf("long")
    def pandas_length(texts: pd.Series) -> pd.Series:
        return texts.str.len().astype("Int64")

    @F.udf("string")
    def prefix(_):
        import sys
        return sys.prefix

    def upper(batches):
        for batch in batches:
            yield pa.RecordBatch.from_arrays([batch.column(0), pc.utf8_upper(batch.column(1))], names=["id", "text"])

    out = df.select("id", arrow_length("text").alias("a"), pandas_length("text").alias("p"))
    assert_frame_equal(out, frame(sail, [(1, 11, 11), (2, None, None), (3, 9, 9)], "id bigint, a bigint, p bigint"))
    assert_frame_equal(df.mapInArrow(upper, SCHEMA), frame(sail, [(1, "HELLO WORLD"), (2, None), (3, "OLÁ MUNDO")]))
    assert [Path(r[0]).resolve() for r in df.limit(1).select(prefix("id")).collect()] == \
        [default_venv_folder().resolve()]


@pytest.mark.real
def test_detect_language_runs_on_the_sail_server(sail, mlflow_registry):
    """textspark's UDF, pickled by this client, runs on Sail's Python (the Sail venv's textspark; no mlflow
    there: the model's version is fetched into the session's cache first, where the server finds it)."""
    from udfs import detect_language
    from udfs.models.loading import build, local_folder
    from udfs.models.registry import resolve
    from udfs.text import NULL_INPUT

    reference = register_catalog_entry("textspark-lid176")
    resolved = resolve(reference)
    direct = build(local_folder(resolved), device="cpu", precision="fp32")  # fetches it into $TEXTSPARK_CACHE
    texts = ["Quarterly profits at US media giant TimeWarner jumped 76% for the three months to December.",
             "O tempo está bom hoje e o trem chegou na hora certa.",
             "Die Regierung hat heute eine neue Schulpolitik angekündigt.", None, "12345 !!!"]
    df = frame(sail, list(enumerate(texts)), "id bigint, text string")
    out = df.select("id", detect_language("text").alias("l"))
    model = resolved.label
    expected = [(0, ("en", direct.detect([texts[0]])[0][0][1], model, None)),
                (1, ("pt", direct.detect([texts[1]])[0][0][1], model, None)),
                (2, ("de", direct.detect([texts[2]])[0][0][1], model, None)),
                (3, (None, None, model, NULL_INPUT)),
                (4, (None, None, model, "no letters to identify a language"))]
    assert_frame_equal(out, frame(sail, expected, "id bigint, l struct<language:string,confidence:float,"
                                                  "model:string,error:string>"), atol=1e-6)


GAPS = [  # (what, statement or call, start of Sail 0.7.2's error)
    ("DESCRIBE HISTORY", lambda s: s.sql("DESCRIBE HISTORY gaps_delta").collect(), "invalid argument: found HISTORY"),
    ("DESCRIBE DETAIL", lambda s: s.sql("DESCRIBE DETAIL gaps_delta").collect(), "invalid argument: found DETAIL"),
    ("SHOW TBLPROPERTIES", lambda s: s.sql("SHOW TBLPROPERTIES gaps_delta").collect(),
     "invalid argument: found TBLPROPERTIES"),
    ("SHOW CREATE TABLE", lambda s: s.sql("SHOW CREATE TABLE gaps_delta").collect(), "SHOW CREATE TABLE"),
    ("OPTIMIZE", lambda s: s.sql("OPTIMIZE gaps_delta").collect(), "invalid argument: found OPTIMIZE"),
    ("VACUUM", lambda s: s.sql("VACUUM gaps_delta").collect(), "invalid argument: found VACUUM"),
    ("overwritePartitions on Delta",
     lambda s: s.range(1).selectExpr("id", "'x' AS p").writeTo("gaps_delta").overwritePartitions(),
     "unsupported sink mode for Delta: OverwritePartitions"),
    ("INSERT OVERWRITE ... PARTITION", lambda s: s.sql(
        "INSERT OVERWRITE gaps_delta PARTITION (p = 'x') SELECT 9 AS id").collect(), "PARTITION for write"),
    ("the spark_catalog name", lambda s: s.table("spark_catalog.default.gaps_delta").collect(),
     "Table not found"),
    ("Iceberg metadata tables", lambda s: s.sql("SELECT * FROM gaps_iceberg.snapshots").collect(),
     "Table not found"),
]


@pytest.mark.parametrize("what, call, error", GAPS, ids=[g[0] for g in GAPS])
def test_known_gaps(sail, what, call, error):
    if not sail.catalog.tableExists("gaps_delta"):
        sail.range(2).selectExpr("id", "'x' AS p").writeTo("gaps_delta").using("delta").partitionedBy("p").create()
        sail.range(2).writeTo("gaps_iceberg").using("iceberg").create()
    with pytest.raises(Exception) as caught:
        call(sail)
    assert error in str(caught.value), f"{what}: {caught.value}"
