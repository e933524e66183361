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
