"""The cluster job's own keys (top level of the job YAML, beside input/output/spark/mlflow), as one typed model.

:class:`ClusterConf` is a :class:`udfs.config.Section`: every value is checked when it is built, and
:func:`parse_cluster_conf` turns a bad one into a one-line :class:`~udfs.errors.ConfigError` that names
the key, the value and what is allowed (``k: got 1; allowed: an integer from 2 to 1000``). Rules that
need several keys (exactly one of ``k`` / ``k_range`` in ``mode: fit``; in ``mode: assign`` a ``model``
and none of the keys that come from it) run after the single keys.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Mapping, get_args

from pydantic import Field, field_validator, model_validator

from udfs.config import Allowed, Section, validate
from udfs.errors import ConfigError
from udfs.runtime.driver import PRECISIONS

Mode = Literal["fit", "assign"]
Distance = Literal["cosine", "euclidean"]
KSelection = Literal["stability", "silhouette"]
MODES, DISTANCES = get_args(Mode), get_args(Distance)
LEXICAL_WEIGHTS = "auto, or a number from 0 (embeddings only) up to, not including, 1"
MAX_K = 1000
REGISTERED_CLUSTERING = "models:/<name>@<alias> of a registered clustering"
REGISTERED_NAME = "a registered model name (letters, digits, - _ .)"
# mode: assign takes these from the registered clustering; giving one is an error
FROM_THE_MODEL = ("k", "k_range", "embedding_model", "distance", "chunk_words", "max_chunks", "lexical_weight",
                  "lexical_dims", "k_selection", "center_languages")
CENTER_LANGUAGES = "auto, true or false"


def _integer(lo: int, hi: int, *, nullable: bool = False) -> Any:
    """An int field from ``lo`` to ``hi`` (``bool`` is no int here); ``nullable``: null is allowed too."""
    return Annotated[int | None if nullable else int, Field(ge=lo, le=hi), Allowed(f"an integer from {lo} to {hi}")]


def _text(what: str) -> Any:
    """An optional non-empty string field."""
    return Annotated[str | None, Field(min_length=1), Allowed(what)]


Column = _text("a column name")
EmbedderReference = _text("a model reference, models:/<name>@<alias>")
ClusteringReference = _text(REGISTERED_CLUSTERING)


class ClusterConf(Section):
    """The cluster keys, in the order the job YAML documents them; ``fail_on_error`` is the job-wide key."""

    mode: Mode = "fit"
    model: ClusteringReference = None    # assign: the registered clustering, models:/<name>@<alias>
    k: _integer(2, MAX_K, nullable=True) = None
    k_range: tuple[int, int] | None = None
    embedding_model: EmbedderReference = None  # fit: embed model reference (default: the catalog's embed model)
    embedding_column: Column = None      # use this array<float|double> / vector column instead of embedding
    label_column: Column = None          # only for NMI / purity; never seen by the fit
    distance: Distance = "cosine"
    seed: _integer(0, 2**31 - 1) = 42
    max_iter: _integer(1, 10_000) = 50
    sample_size: _integer(10, 10_000_000) = 5000  # rows (approx.) each candidate k is fitted and scored on; LSA texts
    projection_size: _integer(0, 100_000) = 2000  # rows collected to the driver for the 2-D plot
    keywords: _integer(1, 100) = 10
    examples: _integer(0, 50) = 3
    name: Annotated[str, Field(pattern=r"^[^/@:]+$"), Allowed(REGISTERED_NAME)] = "textspark-clusters"  # fit
    alias: Annotated[str, Field(min_length=1), Allowed("an alias name")] = "champion"
    device: Annotated[str, Allowed("auto, cpu, cuda, cuda:<index>")] = "auto"
    precision: Annotated[str | None, Allowed(", ".join(PRECISIONS))] = None
    chunk_words: _integer(0, 100_000, nullable=True) = 150  # embed long texts as the mean of windows (0: off)
    max_chunks: _integer(1, 10_000) = 16  # windows per text at most (the rest of a very long text is ignored)
    n_init: _integer(1, 100) = 3          # final fit: k-means runs (seeds seed, seed+1, ...); lowest cost wins
    # auto: joined at AUTO_LEXICAL_WEIGHT only where the texts share terms (udfs.clustering.features.decide_lexical)
    lexical_weight: float | Literal["auto"] = "auto"
    lexical_dims: _integer(2, 1000) = 100  # LSA dimensions of the lexical features
    k_selection: KSelection = "stability"  # k_range: stability across resamples, or the plain best silhouette
    # subtract each language's mean embedding before k-means (udfs.clustering.languages); auto: where the rows
    # hold 2+ languages with CENTER_MIN_ROWS rows each
    center_languages: bool | Literal["auto"] = "auto"
    fail_on_error: bool = False

    @field_validator("k_range", mode="before")
    @classmethod
    def _lo_hi(cls, value: Any) -> Any:
        if value is None:
            return None
        ok = (isinstance(value, (list, tuple)) and len(value) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
        if not ok or not 2 <= value[0] <= value[1] <= MAX_K:
            raise ConfigError("k_range", value, f"[lo, hi] with integers 2 <= lo <= hi <= {MAX_K}")
        return int(value[0]), int(value[1])

    @field_validator("lexical_weight", mode="before")
    @classmethod
    def _auto_or_share(cls, value: Any) -> Any:
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise ConfigError("lexical_weight", value, LEXICAL_WEIGHTS)
        return float(value)

    @field_validator("center_languages", mode="before")
    @classmethod
    def _auto_or_bool(cls, value: Any) -> Any:
        if value == "auto" or isinstance(value, bool):
            return value
        raise ConfigError("center_languages", value, CENTER_LANGUAGES)

    @field_validator("name", "alias", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info) -> Any:
        return cls.model_fields[info.field_name].default if value is None else value

    @field_validator("chunk_words")
    @classmethod
    def _zero_is_off(cls, value: int | None) -> int | None:
        return value or None

    @model_validator(mode="wrap")
    @classmethod
    def _mode_rules(cls, data: Any, handler) -> ClusterConf:
        """The rules between keys; messages show the values as given. In ``mode: assign`` a key that comes
        from the model is an error whatever its value, so it is named before the single keys are checked."""
        given = {k: v for k, v in data.items() if v is not None} if isinstance(data, Mapping) else {}
        model = given.get("model")
        if given.get("mode") == "assign" and isinstance(model, str) and model:
            for key in FROM_THE_MODEL:
                if key in given:
                    raise ConfigError(key, given[key], f"nothing in mode: assign (it comes from {model})")
        conf = handler(data)
        if conf.mode == "fit":
            if (conf.k is None) == (conf.k_range is None):
                raise ConfigError("k", {"k": conf.k, "k_range": given.get("k_range")},
                                  "exactly one of k: <int >= 2> or k_range: [lo, hi] (mode: fit)")
            if conf.model is not None:
                raise ConfigError("model", conf.model, "no model in mode: fit (use embedding_model for the "
                                  "embedder; the fitted clustering is registered under name)")
        elif conf.model is None:
            raise ConfigError("model", None, f"{REGISTERED_CLUSTERING} (mode: assign)")
        if conf.embedding_model and conf.embedding_column:
            raise ConfigError("embedding_model", conf.embedding_model, "nothing when embedding_column is given")
        return conf


KEYS = tuple(key for key in ClusterConf.model_fields if key != "fail_on_error")
"""The top-level keys a cluster job adds to the shared sections (``fail_on_error`` is one of those)."""


def parse_cluster_conf(data: Mapping[str, Any], *, source: str | None = None) -> ClusterConf:
    """Validate the cluster keys of a job mapping; every error names the key, the value and what is allowed."""
    return validate(ClusterConf, {k: v for k, v in data.items() if k in ClusterConf.model_fields}, source=source)
