"""Register every conf/models.yml entry in the MLflow registry (idempotent).

    python -m jobs.register_models [--catalog conf/models.yml] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import sys

from jobs.config import resolve_path
from jobs.train_classifier import load_train_job, run
from udfs.errors import ConfigError
from udfs.models.catalog import CatalogEntry, load_catalog
from udfs.models.registry import client, register_folder
from udfs.platform import setup_environment


def register_entry(entry: CatalogEntry) -> tuple[str, bool]:
    """Register one catalog entry; (version, created)."""
    if "train" in entry.source:
        return build_trained(entry)
    weights = entry.source_dir()
    if weights is None:  # a hub id: only on machines that reach the hub
        from huggingface_hub import snapshot_download

        weights = snapshot_download(entry.source["hf_id"])
    if not weights.is_dir():
        raise ConfigError(f"models.{entry.name}.source", entry.source, "a folder that exists", source="catalog")
    from pathlib import Path

    return register_folder(entry.name, task=entry.task, kind=entry.kind, params=entry.params, weights=Path(weights),
                           alias=entry.alias, description=entry.description, move_alias=True)


def build_trained(entry: CatalogEntry) -> tuple[str, bool]:
    """A ``source: {train: <config>}`` entry: when ``models:/<name>@<alias>`` is absent, train it from the
    config's real data and point the alias at the result; when present, do nothing (idempotent)."""
    mlc = client()
    existing = {m.name: m for m in mlc.search_registered_models(filter_string=f"name='{entry.name}'")}
    aliases = dict(existing[entry.name].aliases or {}) if entry.name in existing else {}
    if entry.alias in aliases:
        return str(aliases[entry.alias]), False
    job = load_train_job(resolve_path(entry.source["train"]), name=entry.name, task=entry.task,
                         label_map=entry.params.get("label_map"))
    print(f"{entry.name}: training from {entry.source['train']} (absent from the registry)", flush=True)
    result = run(job)
    mlc.set_registered_model_alias(entry.name, entry.alias, result.version)
    print(f"{entry.name}: held-out accuracy={result.metrics['accuracy']:.4f} "
          f"macro_f1={result.metrics['macro_f1']:.4f} (train run {result.run_id})", flush=True)
    return result.version, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", help="catalog YAML (default: conf/models.yml)")
    parser.add_argument("--only", nargs="*", help="register only these entries")
    args = parser.parse_args(argv)
    setup_environment()
    catalog = load_catalog(args.catalog)
    names = args.only or list(catalog.entries)
    for name in names:
        entry = catalog[name]
        version, created = register_entry(entry)
        state = "registered new version" if created else "unchanged, kept version"
        print(f"{name}: {state} {version} (@{entry.alias}); task={entry.task}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
