"""What every job shares: the --conf command line, reading the input, the run manifest."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from jobs.config import InputConf
from udfs.errors import ConfigError


def parse_args(description: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conf", required=True, help="job config YAML, e.g. conf/jobs/sample.yml")
    return parser.parse_args(argv)


def run_cli(execute: Callable[[], Any], report: Callable[[Any], None], *,
            input_errors: tuple[type[Exception], ...] = ()) -> int:
    """A job's command line: a configuration error exits 2, an input error 3, both with one line on stderr."""
    try:
        summary = execute()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except input_errors as exc:
        print(f"input error: {exc}", file=sys.stderr)
        return 3
    report(summary)
    return 0


def read_input(spark, inp: InputConf):
    if inp.format == "table":
        return spark.table(inp.path)
    reader = spark.read.options(**inp.options)
    if inp.format == "csv":
        reader = reader.option("header", inp.options.get("header", "true")).option("multiLine", inp.options.get("multiLine", "true"))
    return reader.format(inp.format).load(inp.path)


def write_text_file(spark, path: str, content: str) -> None:
    """Write a small file through Hadoop's FileSystem, so it lands wherever the output does (local, HDFS, S3)."""
    jvm = spark._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(spark._jsc.hadoopConfiguration())
    stream = fs.create(hpath, True)
    try:
        stream.write(bytearray(content.encode("utf-8")))
    finally:
        stream.close()


def manifest_json(**fields: Any) -> str:
    return json.dumps(fields, indent=2, sort_keys=True, default=str)
