"""A stream's input files, checked before a query reads them (udfs/io/stream.py): each file's own columns (Parquet's
footer, a JSON file's records, a CSV file's header) against the stream's; a bad file stops the run or is
quarantined."""
from __future__ import annotations

import bz2
import csv
import fnmatch
import gzip
import io
import json
import re
from urllib.parse import urlsplit

from udfs.errors import ConfigError, InputError
from udfs.io.inputs import reader_options
from udfs.io.jobconf import JobConf
from udfs.io.storage import hidden, join, split, storage_for
from udfs.io.stream_log import SINK_LOG, log_batches, plain, read_log

QUARANTINE = "_quarantine"  # the default quarantine folder, inside the input folder


def check_input_files(conf: JobConf, spark, schema, quarantined: list[dict], output: str | None = None):
    """Check the files the next query may read (:func:`input_state`); bad ones stop the run or are
    quarantined (appended to ``quarantined``). Returns the checked files (plain paths; None for a table) and the
    stream's schema (taken from the folder's files, once per run)."""
    inp = conf.input
    if inp.format == "table":
        return None, schema
    files, processed = input_state(conf, spark, output)
    columns = {f: file_columns(f, inp.format, inp.options, spark) for f in files}
    admitted = set()
    for f in files:
        problem = column_problem(columns[f], inp.text_column, inp.id_column)
        if problem is None:
            admitted.add(f)
        else:
            refuse(conf, spark, f, problem, needs(inp.text_column, inp.id_column), quarantined)
    if schema is None:
        schema = stream_schema(spark, conf, processed)
    if inp.format == "csv" and reader_options("csv", inp.options).get("header", "").lower() == "true":
        for f in sorted(admitted):
            if list(columns[f]) != schema.fieldNames():
                admitted.discard(f)
                refuse(conf, spark, f, f"its header is {', '.join(columns[f])}; Spark reads a CSV file by position, "
                       f"as {', '.join(schema.fieldNames())} (the stream's columns)",
                       f"each CSV file of the stream needs the header {', '.join(schema.fieldNames())}", quarantined)
    return {plain(f) for f in admitted}, schema


def check_quarantine(conf: JobConf) -> None:
    """A quarantine folder inside the input folder must be hidden from the file source (``_`` or ``.``)."""
    root, folder = conf.input.path.rstrip("/"), conf.input.stream.quarantine
    if folder and folder.startswith(root + "/") and not hidden(folder[len(root) + 1:]):
        raise ConfigError("input.stream.quarantine", folder, "a folder outside input.path, or one under it whose "
                          "name starts with _ or . (the stream reads every other folder in input.path)",
                          source=conf.source)


def needs(text_column: str, id_column: str | None) -> str:
    if id_column is None:
        return f"each file of the stream needs the column {text_column} (a string)"
    return (f"each file of the stream needs the columns {text_column} (a string) and {id_column} (an integer or a "
            "string)")


def refuse(conf: JobConf, spark, file: str, problem: str, expected: str, quarantined: list[dict]) -> None:
    """A bad input file: stop the run (InputError), or move it to the quarantine folder with its reason."""
    stream = conf.input.stream
    if stream.bad_files == "stop":
        raise InputError("input.path", file, f"{problem}; {expected}; move it out of the folder, or set "
                         "input.stream.bad_files: quarantine", source=conf.source)
    moved = quarantine(storage_for(conf.input.path, spark), file, conf.input.path,
                       stream.quarantine or join(conf.input.path, QUARANTINE), f"{file}: {problem}; {expected}\n")
    quarantined.append({"file": file, "moved_to": moved, "reason": problem})


def quarantine(storage, file: str, root: str, folder: str, reason: str) -> str:
    """Move ``file`` (under ``root``) to the same relative path under ``folder``, a free name if taken, with
    ``<name>.reason.txt`` written first beside where it goes; where it went."""
    rel = file[len(root.rstrip("/")) + 1:] if file.startswith(root.rstrip("/") + "/") else split(file)[1]
    target, n = join(folder, rel), 0
    while storage.exists(target) or storage.exists(f"{target}.reason.txt"):
        n += 1
        parent, name = split(join(folder, rel))
        stem, dot, ext = name.partition(".")
        target = join(parent, f"{stem}-{n}{dot}{ext}")
    storage.mkdirs(split(target)[0])
    storage.write(f"{target}.reason.txt", reason.encode())
    storage.rename(file, target)
    return target


def input_state(conf: JobConf, spark, output: str | None = None) -> tuple[list[str], list[str]]:
    """The folder's files the next query may read (those no micro-batch has taken yet, and those of a
    micro-batch planned but not committed: it runs again), and those it has processed. The file source logs
    each batch's files in ``<checkpoint>/sources/0``; a batch is done once ``<checkpoint>/commits/<id>`` or the
    sink's log has it."""
    checkpoint, inp, output = conf.input.stream.checkpoint, conf.input, output or conf.output.path
    ck = storage_for(checkpoint, spark)
    done = max([int(n) for n in ck.list(join(checkpoint, "commits")) if n.isdigit()]
               + list(log_batches(storage_for(output, spark), join(output, SINK_LOG)) if output else []) + [-1])
    taken = {plain(e["path"]): e.get("batchId", batch)
             for batch, entries in read_log(ck, join(checkpoint, "sources", "0")) for e in entries}
    files = input_files(storage_for(inp.path, spark), inp.path, inp.options)
    return [f for f in files if taken.get(plain(f), done + 1) > done], \
        [f for f in files if taken.get(plain(f), done + 1) <= done]


def input_files(storage, path: str, options: dict[str, str]) -> list[str]:
    """The data files a file source reads in the folder ``path``: not hidden (``_``, ``.``), and matching the
    ``pathGlobFilter`` option when given."""
    pattern = {k.lower(): v for k, v in options.items()}.get("pathglobfilter")
    return [join(path, rel) for rel in storage.files(path)
            if not hidden(rel) and (pattern is None or fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], pattern))]


def column_problem(columns: dict[str, str] | str, text_column: str, id_column: str | None) -> str | None:
    """What keeps a file with ``columns`` (name -> Spark type name; a string: why it cannot be read) out of the
    stream, in words; None when the text column is a string and the id column an integer or a string."""
    if isinstance(columns, str):
        return columns
    for name in (text_column, id_column):
        if name is not None and name not in columns:
            return f"has no column {name!r} (its columns: {', '.join(sorted(columns)) or 'none'})"
    if kind(columns[text_column]) not in ("string", "null"):
        return f"its column {text_column!r} is {columns[text_column]}, not a string"
    if id_column is not None and kind(columns[id_column]) not in ("integer", "string", "null"):
        return f"its column {id_column!r} is {columns[id_column]}, not an integer or a string"
    return None


def kind(spark_type: str) -> str:
    if spark_type == "string":
        return "string"
    if spark_type in ("tinyint", "smallint", "int", "bigint"):
        return "integer"
    return "null" if spark_type in ("void", "null") else "other"


def file_columns(path: str, fmt: str, options: dict[str, str], spark=None) -> dict[str, str] | str:
    """A file's own columns (name -> Spark type name, in the file's order), or why it cannot be read. Local
    files: Parquet's footer (pyarrow), a JSON file's records, a CSV file's header line; other filesystems and
    compressions Python cannot open: Spark reads the file's schema."""
    opts = {k.lower(): v for k, v in reader_options(fmt, options).items()}
    try:
        if urlsplit(path).scheme in ("", "file") and (fmt == "parquet" or opener(path) is not None) \
                and not (fmt == "csv" and opts.get("inferschema", "").lower() == "true"):
            return local_columns(plain(path), fmt, opts)
        return spark_columns(path, fmt, options, spark)
    except Exception as exc:  # noqa: BLE001 - whatever the reader raised: the file is unreadable as fmt
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot be read as {fmt} ({first[:200]})"


ARROW_TYPES = {"int8": "tinyint", "int16": "smallint", "int32": "int", "int64": "bigint", "float": "float",
               "double": "double", "bool": "boolean", "string": "string", "large_string": "string",
               "string_view": "string", "null": "void"}


def spark_columns(path: str, fmt: str, options: dict[str, str], spark) -> dict[str, str]:
    """The schema Spark infers for the one file ``path`` (a Spark job for JSON and CSV)."""
    reader = spark.read.options(**reader_options(fmt, options)).format(fmt)
    return {f.name: f.dataType.simpleString() for f in reader.load(path).schema.fields}


def local_columns(path: str, fmt: str, opts: dict[str, str]) -> dict[str, str]:
    """A local file's columns read by Python: Parquet's footer (pyarrow), a CSV file's header, a JSON file's
    records (``opts``: the reader options, keys in lower case)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return {f.name: ARROW_TYPES.get(str(f.type), str(f.type)) for f in pq.read_schema(path)}
    with opener(path)(path, "rt", encoding=opts.get("encoding", "utf-8"), newline="") as fh:
        if fmt == "csv":
            return csv_header(fh, opts)
        return json_columns(fh, opts.get("multiline", "").lower() == "true")


def opener(path: str):
    """How Python opens ``path`` as text (by its extension, as Hadoop picks a codec), or None."""
    name = path.rsplit("/", 1)[-1].lower()
    if name.endswith(".gz"):
        return gzip.open
    if name.endswith(".bz2"):
        return bz2.open
    if re.search(r"\.(deflate|snappy|lz4|zst|zstd|br|xz)$", name):
        return None
    return io.open


def csv_header(fh, opts: dict[str, str]) -> dict[str, str]:
    """A CSV file's columns: its header (``header: true``) or ``_c0, _c1, ...``; Spark reads each as a string."""
    quote, escape = opts.get("quote", '"'), opts.get("escape", "\\")
    reader = csv.reader(fh, delimiter=opts.get("sep", opts.get("delimiter", ",")), quotechar=quote,
                        doublequote=escape == quote, escapechar=None if escape == quote else escape)
    first = next(reader, [])
    names = first if opts.get("header", "").lower() == "true" else [f"_c{i}" for i in range(len(first))]
    return {name: "string" for name in names}


JSON_TYPES = {str: "string", bool: "boolean", int: "bigint", float: "double", list: "array", dict: "struct"}


def json_columns(fh, multiline: bool) -> dict[str, str]:
    """A JSON file's columns and the type Spark would infer for each (conflicting values: string, as Spark;
    only nulls: void). A line that is not a JSON object makes the file unreadable: Spark would read it as a
    row of nulls."""
    if multiline:
        data = json.load(fh)
        records = data if isinstance(data, list) else [data]
    else:
        records = []
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError:
                    raise ValueError(f"line {number} is not JSON") from None
    seen: dict[str, set[str]] = {}
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise ValueError(f"record {number} is not a JSON object")
        for key, value in record.items():
            seen.setdefault(key, set()).update(() if value is None else (JSON_TYPES.get(type(value), "string"),))
    return {key: ("void" if not types else types.pop() if len(types) == 1
                  else "double" if types == {"bigint", "double"} else "string") for key, types in seen.items()}


def stream_schema(spark, conf: JobConf, processed: list[str]):
    """The schema the query reads every file with: Spark's, from the files in the folder (bad ones are out of
    it by now). A CSV stream takes it from a file it has processed, when one is left: Spark reads CSV files by
    position, and infers a folder's header from one of its files, which could be a new one in another order."""
    inp = conf.input
    source = processed[0] if inp.format == "csv" and processed else inp.path
    try:
        schema = spark.read.options(**reader_options(inp.format, inp.options)).format(inp.format) \
                      .load(source).schema
    except Exception as exc:  # noqa: BLE001 - AnalysisException (no file yet), py4j / Connect errors
        raise InputError("input.path", inp.path, "a stream takes its schema from the files in the folder; "
                         f"Spark could not read one as {inp.format} ({str(exc).splitlines()[0][:200]})",
                         source=conf.source) from None
    for name in (inp.text_column, inp.id_column):
        if name is not None and name not in schema.fieldNames():
            raise InputError("input.path", inp.path, f"the folder's schema has no column {name!r} (it has "
                             f"{', '.join(schema.fieldNames())})", source=conf.source)
    return schema
