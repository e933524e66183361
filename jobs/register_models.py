"""Register every conf/models.yml entry in the MLflow registry (idempotent).

    python -m jobs.register_models [--catalog my_models.yml] [--only NAME ...]

The catalog is --catalog, else $TEXTSPARK_MODELS, else the shipped conf/models.yml. A configuration error
(an unknown kind, a missing folder, a bad key) is one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from udfs.io.cli import run_cli
from udfs.io.datasets import PACKAGES
from jobs.train_classifier import DatasetInput, DatasetsInput, load_train_job, run
from udfs.errors import ConfigError, InputError
from udfs.models.catalog import CatalogEntry, load_catalog
from udfs.models.convert import CONVERTERS
from udfs.models.packages import require
from udfs.models.reference import languages_tag
from udfs.models.registry import client, record_languages, register_folder
from udfs.platform import first_line, setup_environment
from udfs.training.settings import KIND_OF_METHOD


def register_entry(entry: CatalogEntry) -> tuple[str, bool]:
    """Register one catalog entry; (version, created)."""
    if "train" in entry.source:
        return build_trained(entry)
    if "convert" in entry.source:
        return register_converted(entry)
    weights = entry.source_dir()
    if weights is None:  # a hub id: only on machines that reach the hub
        weights = hub_snapshot(entry)
    if not weights.is_dir():
        raise ConfigError(f"models.{entry.name}.source", entry.source, "a folder that exists",
                          source=entry.catalog_file)
    return register_weights(entry, weights)


def hub_snapshot(entry: CatalogEntry) -> Path:
    """The local snapshot of a ``source: {hf_id: ...}`` entry (downloaded, or Hugging Face's cache); a hub this
    machine cannot reach, or an id it does not hold, is one line (InputError, exit 3), not a traceback."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(entry.source["hf_id"]))  # a str
    except (OSError, ValueError) as exc:  # LocalEntryNotFoundError (offline, not cached), HTTP errors...
        raise InputError(f"models.{entry.name}.source.hf_id", entry.source["hf_id"],
                         f"the Hugging Face hub did not give it ({type(exc).__name__}: {first_line(exc)}); allowed: an "
                         "id this machine can download or has cached, or source: {path: <a local folder>}",
                         source=entry.catalog_file) from None


def register_weights(entry: CatalogEntry, weights: Path) -> tuple[str, bool]:
    """Register ``weights`` as a version of the entry (its task, kind, params, alias, languages)."""
    return register_folder(entry.name, task=entry.task, kind=entry.kind, params=entry.params, weights=weights,
                           alias=entry.alias, description=entry.description, move_alias=True,
                           languages=entry.languages)


def register_converted(entry: CatalogEntry) -> tuple[str, bool]:
    """A ``source: {convert: ...}`` entry: convert into a temporary folder and register it (the converter
    writes the same bytes every run, so an unchanged source keeps its version)."""
    import tempfile

    from udfs.models.convert import run_converter

    with tempfile.TemporaryDirectory(prefix="textspark-convert-") as tmp:
        try:
            weights = run_converter(entry.source, Path(tmp) / "weights")
        except ConfigError as e:
            raise ConfigError(f"models.{entry.name}.{e.key}", e.value, e.allowed, source=entry.catalog_file) from None
        return register_weights(entry, weights)


def build_trained(entry: CatalogEntry) -> tuple[str, bool]:
    """A ``source: {train: <config>}`` entry: when ``models:/<name>@<alias>`` is absent, or is a model of
    another kind than the entry's (the catalog changed the recipe, e.g. a head became a fine-tuned model),
    train it from the config's real data and point the alias at the result; else do nothing (idempotent)."""
    job = load_train_job(entry.train_config(), name=entry.name, task=entry.task,
                         label_map=entry.params.get("label_map"))
    makes = KIND_OF_METHOD[job.settings.method]
    if makes != entry.kind:  # before any model loads
        raise ConfigError(f"models.{entry.name}.kind", entry.kind,
                          f"{makes} (what {entry.source['train']} trains: method {job.settings.method})",
                          source=entry.catalog_file)
    mlc = client()
    existing = {m.name: m for m in mlc.search_registered_models(filter_string=f"name='{entry.name}'")}
    aliases = dict(existing[entry.name].aliases or {}) if entry.name in existing else {}
    if entry.alias in aliases:
        version = str(aliases[entry.alias])
        tags = mlc.get_model_version(entry.name, version).tags
        if tags.get("textspark.kind") == entry.kind:
            record_languages(entry.name, version, languages_tag(entry.languages), tags)
            return version, False
        kind = tags.get("textspark.kind")
        why = f"@{entry.alias} is version {version}, of kind {kind}; the catalog's is {entry.kind}"
    else:
        why = "absent from the registry"
    print(f"{entry.name}: training from {entry.source['train']} ({why})", flush=True)
    result = run(job)
    record_languages(entry.name, result.version, languages_tag(entry.languages))
    mlc.set_registered_model_alias(entry.name, entry.alias, result.version)
    print(f"{entry.name}: held-out accuracy={result.metrics['accuracy']:.4f} "
          f"macro_f1={result.metrics['macro_f1']:.4f} (train run {result.run_id})", flush=True)
    return result.version, True


def packages_needed(entry: CatalogEntry) -> list[tuple[str, str]]:
    """(package, what needs it) for what registering ``entry`` reads: the package shipping its weights, its
    converter's, or, when it will be trained (its alias is absent), the packages holding its datasets."""
    where = f"{entry.catalog_file}: models.{entry.name}.source"
    if "package" in entry.source:
        return [(entry.source["package"], f"{where}.package")]
    if "convert" in entry.source:
        return [(CONVERTERS[entry.source["convert"]][1], f"{where}.convert")]
    if "train" not in entry.source:
        return []
    found = client().search_registered_models(filter_string=f"name='{entry.name}'")
    if found and entry.alias in (found[0].aliases or {}):  # build_trained keeps it: no data read
        return []
    job = load_train_job(entry.train_config(), name=entry.name, task=entry.task,
                         label_map=entry.params.get("label_map"))
    inputs = job.input.datasets if isinstance(job.input, DatasetsInput) else [job.input]
    return [(PACKAGES[one.dataset], f"{entry.name} (trained from the {one.dataset} dataset of {entry.source['train']})")
            for one in inputs if isinstance(one, DatasetInput) and one.dataset in PACKAGES]  # else shipped here


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", help="catalog YAML (default: conf/models.yml)")
    parser.add_argument("--only", nargs="*", help="register only these entries")
    args = parser.parse_args(argv)
    return run_cli(lambda: register_all(args.catalog, args.only), lambda lines: None)


def register_all(catalog_path: str | None, only: list[str] | None) -> list[str]:
    """Register the catalog's entries (every one, or ``only``), printing a line for each."""
    setup_environment()
    catalog = load_catalog(catalog_path)
    entries = [catalog[name] for name in only or catalog.entries]  # unknown names fail before any work
    for entry in entries:  # every package the registration reads is installed: one line, exit 3, before any work
        for package, needed_by in packages_needed(entry):
            require(package, needed_by)
    lines = []
    for entry in entries:
        version, created = register_entry(entry)
        state = "registered new version" if created else "unchanged, kept version"
        reads = ", ".join(entry.languages) if entry.languages else "not recorded (add languages: to the entry)"
        lines.append(f"{entry.name}: {state} {version} (@{entry.alias}); task={entry.task}; reads {reads}")
        print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    sys.exit(main())
