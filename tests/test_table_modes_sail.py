"""``output.table`` modes append, error and ignore on Delta and Iceberg tables through Sail 0.7.2 (overwrite
and incremental are in tests/test_tables.py): append creates the table, then adds rows; error refuses an
existing table in one line before any model runs; ignore writes nothing to one."""
from __future__ import annotations

import pytest

from jobs import analyze
from udfs.errors import InputError
from udfs.io.jobconf import parse_job
from udfs.io.tables import RUN_ID
from tests.helpers import register_catalog_entry
from tests.sail import connect_session, sail_remote  # noqa: F401 - a fixture
from tests.test_tables import parquet_input, texts


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["delta", "iceberg"])
def test_append_error_ignore(fmt, sail_remote, mlflow_registry, tmp_path):
    from udfs.models.loading import local_folder
    from udfs.models.registry import resolve

    local_folder(resolve(register_catalog_entry("textspark-lid176")))  # into the cache the server reads
    table = f"textspark.modes_{fmt}"

    def job(inp, mode):
        return parse_job({"input": {"path": str(inp), "id_column": "id"},
                          "output": {"table": table, "format": fmt, "mode": mode},
                          "tasks": [{"task": "language", "column": "lang"}]}, source=f"{fmt}.yml")

    one, two = parquet_input(tmp_path / "one", texts(8)), parquet_input(tmp_path / "two", texts(4, start=8))
    three = parquet_input(tmp_path / "three", texts(3, start=12))
    with connect_session(sail_remote, warehouse=tmp_path / "warehouse") as sail:
        sail.sql("CREATE DATABASE IF NOT EXISTS textspark").collect()
        first = analyze.run(job(one, "append"), spark=sail)  # creates it
        second = analyze.run(job(two, "append"), spark=sail)
        assert (first["table"]["format"], first["rows"], second["rows"], second["output_rows"]) == (fmt, 8, 4, 12)

        def by_run():
            return {r[0]: r[1] for r in sail.table(table).groupBy(RUN_ID).count().collect()}

        assert by_run() == {first["run_id"]: 8, second["run_id"]: 4}
        assert sorted(r[0] for r in sail.table(table).select("id").collect()) == list(range(12))

        with pytest.raises(InputError) as err:
            analyze.run(job(three, "error"), spark=sail)
        assert str(err.value) == (f"{fmt}.yml: output.table: got '{table}'; the table exists and mode is error; "
                                  "allowed: a new table, or mode overwrite, append, ignore or incremental")
        skipped = analyze.run(job(three, "ignore"), spark=sail)
        assert skipped == {"output": table, "mode": "ignore", "rows": 0, "skipped": True, "tasks": []}
        assert by_run() == {first["run_id"]: 8, second["run_id"]: 4}  # neither wrote a row
