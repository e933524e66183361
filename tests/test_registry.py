import multiprocessing
from pathlib import Path

import pytest

from tests.tiny_models import build_tiny_encoder
from udfs.errors import ModelReferenceError
from udfs.models.reference import parse_reference
from udfs.models.registry import register_folder, resolve


def test_parse_reference_forms():
    assert parse_reference("models:/topics@champion") == ("topics", "champion", None)
    assert parse_reference("models:/topics/3") == ("topics", None, "3")
    assert parse_reference("topics") == ("topics", "champion", None)
    for bad in ("models:/", "models:/a/b/c", "runs:/x/model", "", None):
        with pytest.raises(ModelReferenceError, match="allowed"):
            parse_reference(bad)


def test_resolve_alias_and_version(tiny_encoder):
    by_alias = resolve(tiny_encoder, task="embed")
    by_version = resolve(f"models:/tiny-encoder/{by_alias.version}")
    assert (by_alias.name, by_alias.task, by_alias.kind) == ("tiny-encoder", "embed", "hf_encoder")
    assert by_version == by_alias
    assert by_alias.params == {"max_tokens": 64, "normalize": True, "pooling": "mean", "token_budget": 256}
    assert by_alias.label == f"tiny-encoder/{by_alias.version}"


def test_missing_alias_lists_the_aliases_that_exist(tiny_encoder):
    version = resolve(tiny_encoder).version
    with pytest.raises(ModelReferenceError, match=rf"no alias 'production'.*@champion -> v{version}"):
        resolve("models:/tiny-encoder@production")


def test_missing_model_and_version_are_named(tiny_encoder):
    with pytest.raises(ModelReferenceError, match=r"no registered model 'nope'.*tiny-encoder"):
        resolve("models:/nope@champion")
    with pytest.raises(ModelReferenceError, match=r"has no version 999"):
        resolve("models:/tiny-encoder/999")


def test_register_is_idempotent_and_a_changed_source_adds_a_version(tmp_path, mlflow_registry):
    folder = build_tiny_encoder(tmp_path / "enc", seed=1)
    v1, created1 = register_folder("idem-encoder", task="embed", kind="hf_encoder", weights=folder, params={})
    v1_again, created_again = register_folder("idem-encoder", task="embed", kind="hf_encoder", weights=folder,
                                              params={})
    assert (v1, created1, v1_again, created_again) == ("1", True, "1", False)
    build_tiny_encoder(folder, seed=2)  # same files, new weights
    v2, created2 = register_folder("idem-encoder", task="embed", kind="hf_encoder", weights=folder, params={})
    assert (v2, created2) == ("2", True)
    assert resolve("models:/idem-encoder@champion").version == "2"
    # same weights, other params: a distinct model version too
    v3, _ = register_folder("idem-encoder", task="embed", kind="hf_encoder", weights=folder, params={"pooling": "cls"})
    assert v3 == "3"


RACE_ROUNDS = 4


def _race_worker(folder: str, uri: str, rounds: int, barrier, results) -> None:
    """One of two processes: per round, register ``folder`` as ``race-<round>`` once both reach the barrier
    (round 0 also creates the registry's sqlite database)."""
    import os

    import mlflow

    os.environ.update(MLFLOW_TRACKING_URI=uri, MLFLOW_REGISTRY_URI=uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for r in range(rounds):
        barrier.wait(timeout=120)
        try:
            version, created = register_folder(f"race-{r}", task="embed", kind="hf_encoder", weights=Path(folder),
                                               params={})
            results.put((r, version, created, None))
        except Exception as exc:  # reported to the test, which fails on it
            results.put((r, None, None, f"{type(exc).__name__}: {exc}"))


def test_two_processes_registering_at_once_leave_one_version(tmp_path):
    """Two jobs registering the same folder on a fresh registry at the same moment (spawned processes,
    released together by a barrier, RACE_ROUNDS times): one version, both callers return it, the alias
    points at it."""
    from mlflow.tracking import MlflowClient

    folder = build_tiny_encoder(tmp_path / "enc", seed=3)
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race_worker, args=(str(folder), uri, RACE_ROUNDS, barrier, results))
             for _ in range(2)]
    for p in procs:
        p.start()
    got = [results.get(timeout=300) for _ in range(2 * RACE_ROUNDS)]
    for p in procs:
        p.join(timeout=60)
    assert not [g for g in got if g[3]], got
    mlc = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for r in range(RACE_ROUNDS):
        versions = [str(v.version) for v in mlc.search_model_versions(f"name='race-{r}'")]
        returned = {g[1] for g in got if g[0] == r}
        created = sorted(g[2] for g in got if g[0] == r)
        aliases = {k: str(v) for k, v in mlc.get_registered_model(f"race-{r}").aliases.items()}
        assert (versions, returned, created, aliases) == (["1"], {"1"}, [False, True], {"champion": "1"}), r


def test_registration_records_the_languages_a_version_reads(workdir, mlflow_registry):
    from udfs.errors import ConfigError
    from udfs.models.registry import client

    weights = build_tiny_encoder(workdir / "tiny-langs")
    params = {"max_tokens": 64, "pooling": "mean", "normalize": True, "token_budget": 256}
    version, created = register_folder("tiny-langs", task="embed", kind="hf_encoder", weights=weights, params=params)
    assert created and resolve("models:/tiny-langs@champion").languages is None  # not recorded
    # the same folder again, now with its languages: no new version, the tag is set on the existing one
    assert register_folder("tiny-langs", task="embed", kind="hf_encoder", weights=weights, params=params,
                           languages=["pt", "en"]) == (version, False)
    assert client().get_model_version("tiny-langs", version).tags["textspark.languages"] == "en,pt"
    assert resolve("models:/tiny-langs@champion").languages == ("en", "pt")
    register_folder("tiny-langs", task="embed", kind="hf_encoder", weights=weights, params=params, languages="any")
    assert resolve("models:/tiny-langs@champion").languages == ("any",)
    with pytest.raises(ConfigError, match=r"languages: got \['english'\]; allowed: any, or ISO 639 codes"):
        register_folder("tiny-langs", task="embed", kind="hf_encoder", weights=weights, params=params,
                        languages=["english"])
    client().set_model_version_tag("tiny-langs", version, "textspark.languages", "../../etc")
    with pytest.raises(ModelReferenceError, match=r"tag textspark.languages: got '../../etc'; allowed: any, or ISO"):
        resolve("models:/tiny-langs@champion")
