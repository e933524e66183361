"""Every third-party package that udfs/ and jobs/ import is declared in setup.cfg: in install_requires, or in
the extra that stands for it (an import inside ``try: ... except ImportError``, or a documented extra).

Imports are read with ast (statements at any depth: a lazy import inside a function is a dependency too), each
top-level module is mapped to the distribution that installs it (importlib.metadata.packages_distributions),
and the distribution's name is looked up in setup.cfg's text.
"""
from __future__ import annotations

import ast
import configparser
import importlib.metadata
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = ("udfs", "jobs")
# distribution -> the extra that declares it instead of install_requires, and why
EXTRAS = {"pyspark": "spark",  # a cluster's runtime (Databricks) brings its own Spark: the wheel must not replace it
          "lingua-language-detector": "lingua"}  # the lingua kinds only; udfs.models.packages names the pip command
# module -> the declared distribution it comes with, for a module whose version that distribution pins
PROVIDED = {"py4j": "pyspark"}  # pyspark's own bridge to the JVM, at the exact version pyspark requires


def normalize(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): ``PyYAML`` and ``pyyaml`` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(setup_cfg: str) -> tuple[set[str], dict[str, set[str]]]:
    """(install_requires, {extra: its requirements}) named in ``setup_cfg``'s text, names normalized."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(setup_cfg)

    def names(value: str) -> set[str]:
        lines = (line.split("#", 1)[0].strip() for line in value.splitlines())
        return {normalize(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)[0]) for line in lines if line}

    extras = dict(parser["options.extras_require"]) if parser.has_section("options.extras_require") else {}
    return names(parser.get("options", "install_requires", fallback="")), {k: names(v) for k, v in extras.items()}


def _guarded(tree: ast.AST) -> set[int]:
    """ids of the import statements inside a ``try`` whose handlers catch ImportError (an optional import)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                handler.type is not None and {"ImportError", "ModuleNotFoundError"} & {
                    ast.unparse(t) for t in (handler.type.elts if isinstance(handler.type, ast.Tuple)
                                             else [handler.type])}
                for handler in node.handlers):
            found |= {id(n) for stmt in node.body for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return found


def third_party_imports(sources: dict[str, str]) -> dict[str, dict[str, bool]]:
    """module -> {file: whether every import of it there is optional}, for the top-level modules ``sources``
    (file -> text) import that are neither the standard library nor the project's own."""
    found: dict[str, dict[str, bool]] = {}
    for name, text in sorted(sources.items()):
        tree = ast.parse(text)
        optional = _guarded(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in {m.split(".")[0] for m in modules} - set(sys.stdlib_module_names) - {*CODE, "__future__"}:
                files = found.setdefault(module, {})
                files[name] = files.get(name, True) and id(node) in optional
    return found


def problems(imports: dict[str, dict[str, bool]], setup_cfg: str,
             distributions: dict[str, list[str]] | None = None) -> list[str]:
    """One line per imported module that setup.cfg does not declare where it should."""
    required, extras = requirements(setup_cfg)
    distributions = importlib.metadata.packages_distributions() if distributions is None else distributions
    declared_somewhere = required.union(*extras.values())
    found = []
    for module, files in sorted(imports.items()):
        where = ", ".join(sorted(files))
        if module in PROVIDED:
            if normalize(PROVIDED[module]) not in declared_somewhere:
                found.append(f"{module}: comes with {PROVIDED[module]}, which setup.cfg does not declare")
            continue
        names = sorted({normalize(d) for d in distributions.get(module, [])})
        if not names:
            found.append(f"{module}: no installed distribution provides it (imported by {where})")
        elif set(names) & required:
            continue
        elif (extra := next((EXTRAS[n] for n in names if n in EXTRAS), None)) is not None:
            if not set(names) & extras.get(extra, set()):
                found.append(f"{module} ({' / '.join(names)}): not in the extra {extra!r} (imported by {where})")
        elif all(files.values()):  # only ever imported optionally: any extra may declare it
            if not set(names) & set().union(*extras.values()):
                found.append(f"{module} ({' / '.join(names)}): an optional import in no extra (imported by {where})")
        else:
            found.append(f"{module} ({' / '.join(names)}): not in install_requires (imported by {where})")
    return found


def project_sources() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for top in CODE for p in sorted((ROOT / top).rglob("*.py"))}


def test_every_imported_package_is_declared():
    assert problems(third_party_imports(project_sources()), (ROOT / "setup.cfg").read_text()) == []


def test_a_requirement_taken_out_of_setup_cfg_is_named():
    setup_cfg = (ROOT / "setup.cfg").read_text()
    without = re.sub(r"\n\s*pydantic[^\n]*", "", setup_cfg)
    assert without != setup_cfg
    imports = third_party_imports(project_sources())
    assert [line for line in problems(imports, without) if line.startswith("pydantic")] == [
        "pydantic (pydantic): not in install_requires (imported by "
        + ", ".join(sorted(imports["pydantic"])) + ")"]
    without_spark = setup_cfg.replace("pyspark[connect]>=4.3,<4.4", "")
    assert [line for line in problems(imports, without_spark) if line.startswith(("pyspark", "py4j"))] == [
        "py4j: comes with pyspark, which setup.cfg does not declare",
        "pyspark (pyspark): not in the extra 'spark' (imported by " + ", ".join(sorted(imports["pyspark"])) + ")"]


def test_imports_are_read_at_any_depth_and_an_optional_one_may_live_in_an_extra():
    sources = {"udfs/a.py": "import numpy\nimport os\nfrom udfs import text\n",
               "udfs/b.py": "def f():\n    from sklearn.cluster import KMeans\n",
               "udfs/c.py": "try:\n    import lingua\nexcept (ImportError, OSError):\n    lingua = None\n"
                            "try:\n    import fancy\nexcept ModuleNotFoundError:\n    fancy = None\n"
                            "import plain\n"}
    imports = third_party_imports(sources)
    assert imports == {"numpy": {"udfs/a.py": False}, "sklearn": {"udfs/b.py": False},
                       "lingua": {"udfs/c.py": True}, "fancy": {"udfs/c.py": True}, "plain": {"udfs/c.py": False}}
    setup_cfg = ("[options]\ninstall_requires =\n    numpy>=1.26  # a comment\n    scikit-learn\n"
                 "[options.extras_require]\nlingua =\n    lingua-language-detector==2.1.1\nextra =\n    Fancy_Pkg\n")
    distributions = {"numpy": ["numpy"], "sklearn": ["scikit-learn"], "lingua": ["lingua-language-detector"],
                     "fancy": ["fancy.pkg"], "plain": ["plain"]}
    assert problems(imports, setup_cfg, distributions) == [
        "plain (plain): not in install_requires (imported by udfs/c.py)"]
    assert problems(imports, setup_cfg.replace("    Fancy_Pkg\n", "    other\n"), distributions) == [
        "fancy (fancy-pkg): an optional import in no extra (imported by udfs/c.py)",
        "plain (plain): not in install_requires (imported by udfs/c.py)"]
