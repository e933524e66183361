"""Options once: each task's options model (``udfs/tasks/<task>.py`` ``<Task>Options``) is the one source of its
keys' defaults and descriptions. The public factories keep an explicit, documented signature for users and
IDEs; these tests hold it to the model: every option is a factory parameter with the model's default, the plan
function has no default of its own, the factory's docstring Args entry is the model's description and default,
and the README's task table shows the factories' defaults. Each check is shown to fail on a changed copy."""
from __future__ import annotations

import ast
import inspect
import re
import types
from pathlib import Path
from typing import Any, Callable

import pytest
from pydantic import Field

from udfs.runtime import driver
from udfs.tasks.classify import ClassifyOptions
from udfs.tasks.table import TASK_DEFS, task_keys_help

ROOT = Path(__file__).resolve().parents[1]
COMMON = ("model", "device", "precision", "fail_on_error", "languages")  # every factory's, driver.plan's defaults


def doc_default(value: Any) -> str:
    """A default as the docstrings write it: ``default auto`` (a bare string), ``default None``, ``default 0.5``."""
    return value if isinstance(value, str) else repr(value)


def doc_args(factory: Callable) -> dict[str, str]:
    """The factory's Google-style ``Args:`` entries, name -> text (continuation lines joined, spacing collapsed)."""
    doc = inspect.getdoc(factory) or ""
    if "\nArgs:\n" not in doc:
        return {}
    entries: dict[str, str] = {}
    name = None
    for line in doc.split("\nArgs:\n", 1)[1].splitlines():
        if not line.strip() or not line.startswith("    "):
            break
        head = re.match(r"^    (\w+): (.*)$", line)
        if head:
            name, entries[head[1]] = head[1], head[2]
        elif name is not None:
            entries[name] += " " + line.strip()
    return {k: " ".join(v.split()) for k, v in entries.items()}


def expected_arg(info) -> str:
    """The Args entry an option must have: the model's description, then its default (or ``required``)."""
    tail = "required." if info.is_required() else f"default {doc_default(info.get_default())}."
    return " ".join(f"{info.description}; {tail}".split())


def mismatches(name: str, *, options=None, factory=None, plan=None) -> list[str]:
    """Where the factory, plan function and docstring of task ``name`` disagree with its options model (each
    argument, when given, replaces the task's own: the failing copies below use that)."""
    tdef = TASK_DEFS[name]
    options, factory, plan = options or tdef.options, factory or tdef.factory, plan or tdef.plan
    made, planned = inspect.signature(factory).parameters, inspect.signature(plan).parameters
    documented = doc_args(factory)
    found = []
    for key, info in options.model_fields.items():
        if not info.description:
            found.append(f"{name}: option {key} has no description in {options.__name__}")
        param = made.get(key)
        if param is None:
            found.append(f"{name}: option {key} is not a parameter of {factory.__name__}()")
        elif info.is_required() != (param.default is inspect.Parameter.empty):
            found.append(f"{name}: option {key} is {'required' if info.is_required() else 'optional'} in "
                         f"{options.__name__}, not in {factory.__name__}()")
        elif not info.is_required() and repr(param.default) != repr(info.get_default()):
            found.append(f"{name}: {factory.__name__}({key}={param.default!r}), but {options.__name__} says "
                         f"{info.get_default()!r}")
        own = planned.get(key)
        if own is not None and own.default is not inspect.Parameter.empty \
                and (info.is_required() or repr(own.default) != repr(info.get_default())):
            found.append(f"{name}: {plan.__name__}({key}={own.default!r}) has a default of its own")
        if key not in planned and not any(p.kind is p.VAR_KEYWORD for p in planned.values()):
            found.append(f"{name}: {plan.__name__}() takes no option {key}")
        if key not in documented:
            found.append(f"{name}: {factory.__name__}'s docstring Args do not mention {key}")
        elif info.description and documented[key] != expected_arg(info):
            found.append(f"{name}: {factory.__name__}'s Args entry for {key} is {documented[key]!r}, the model "
                         f"says {expected_arg(info)!r}")
    undocumented = [p for p in made if p not in documented]
    if undocumented:
        found.append(f"{name}: {factory.__name__}'s docstring Args do not mention {undocumented}")
    return found


@pytest.mark.parametrize("name", sorted(TASK_DEFS))
def test_the_factory_plan_and_docstring_agree_with_the_options_model(name):
    assert mismatches(name) == []


@pytest.mark.parametrize("name", sorted(TASK_DEFS))
def test_the_common_keys_have_driver_plans_defaults_and_one_text(name):
    """model, device, precision, fail_on_error, languages: the factory's and the plan's defaults are
    driver.plan's; their Args text (but model's, which names the task's default) is the same in every factory."""
    tdef = TASK_DEFS[name]
    base = {key: p.default for key, p in inspect.signature(driver.plan).parameters.items()}
    base["model"] = None  # driver.plan's is required: None there is the catalog's default, as here
    for fn in (tdef.factory, tdef.plan):
        params = inspect.signature(fn).parameters
        for key in COMMON:
            if key in params:
                assert repr(params[key].default) == repr(base[key]), (fn.__name__, key)
    reference = doc_args(TASK_DEFS["classify"].factory)
    documented = doc_args(tdef.factory)
    for key in COMMON[1:]:
        if key in documented:
            assert documented[key] == reference[key], (name, key)


def test_the_check_fails_on_a_changed_default_description_or_plan_default():
    classify = TASK_DEFS["classify"].factory
    assert mismatches("classify") == []

    changed = types.FunctionType(classify.__code__, classify.__globals__, "classify", classify.__defaults__,
                                 classify.__closure__)
    changed.__kwdefaults__ = {**classify.__kwdefaults__, "threshold": 0.6}
    changed.__doc__ = classify.__doc__
    assert mismatches("classify", factory=changed) == [
        "classify: classify(threshold=0.6), but ClassifyOptions says 0.5"]

    class Moved(ClassifyOptions):  # the model's default moves; factory and docstring stay
        max_chunks: int | None = Field(8, description=ClassifyOptions.model_fields["max_chunks"].description)

    found = mismatches("classify", options=Moved)
    assert len(found) == 2 and "classify(max_chunks=16), but Moved says 8" in found[0], found
    assert "Args entry for max_chunks" in found[1], found

    undocumented = types.FunctionType(classify.__code__, classify.__globals__, "classify")
    undocumented.__kwdefaults__ = classify.__kwdefaults__
    undocumented.__doc__ = re.sub(r"\n *temperature: [^\n]*", "", classify.__doc__)
    assert mismatches("classify", factory=undocumented) == [
        "classify: classify's docstring Args do not mention temperature",
        "classify: classify's docstring Args do not mention ['temperature']"]

    reworded = types.FunctionType(classify.__code__, classify.__globals__, "classify")
    reworded.__kwdefaults__ = classify.__kwdefaults__
    reworded.__doc__ = classify.__doc__.replace("softmax; default 0.05.", "softmax; default 0.1.")
    assert [m.split("'s Args entry for ")[1].split(" ")[0] for m in mismatches("classify", factory=reworded)] \
        == ["temperature"]

    def classify_plan(*, model=None, threshold=0.7, **options):
        """A plan that keeps a default of its own."""
    assert mismatches("classify", plan=classify_plan) == [
        "classify: classify_plan(threshold=0.7) has a default of its own"]

    def stiff_plan(*, model=None, labels=None):
        """A plan that takes only some of the options (and no ``**options``)."""
    assert len(mismatches("classify", plan=stiff_plan)) == len(ClassifyOptions.model_fields) - 1


def test_a_plan_takes_its_options_through_the_model():
    """Leaving an option out of the plan call is the model's default; an unknown key is a one-line ConfigError."""
    from udfs.errors import ConfigError

    with pytest.raises(ConfigError, match=r"threshold: got 1.5; allowed: a number between 0 and 1"):
        TASK_DEFS["classify"].plan(model="unused", labels=["a", "b"], threshold=1.5)
    with pytest.raises(ConfigError, match=r"thresold: got 0.3; allowed: keys labels, descriptions, multi_label"):
        TASK_DEFS["classify"].plan(model="unused", thresold=0.3)
    with pytest.raises(ConfigError, match=r"target: got None; allowed: an ISO 639-1 language code"):
        TASK_DEFS["translate"].plan(model="unused")


def test_the_task_keys_help_lists_every_option_with_its_default_and_description():
    """The text a job's --help (and so the docs' configuration reference) shows for the tasks' own keys."""
    text = task_keys_help()
    for name, tdef in TASK_DEFS.items():
        block = re.split(r"\n  (?=\S)", text.split(f"\n  {name}:", 1)[1], maxsplit=1)[0]
        for key, info in tdef.options.model_fields.items():
            default = info.get_default()
            shown = ("required" if info.is_required() else "null" if default is None
                     else str(default).lower() if isinstance(default, bool) else str(default))
            assert re.search(rf"^    {key} +{re.escape(shown)}\b.*\n +{re.escape(info.description)}$", block,
                             re.MULTILINE), (name, key, shown)


# -- the README's task table ------------------------------------------------------------------------------------

def readme_defaults(readme: str) -> list[tuple[str, str, str, Any]]:
    """(task, factory name, key, value) for each ``key=value`` the README's "Tasks" table shows as a default."""
    table = readme.split("\n## Tasks\n", 1)[1].split("\n## ", 1)[0]
    shown = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`"):
            continue
        task = cells[0].split("`")[1]
        if task not in TASK_DEFS:
            continue  # clustering: a job, not a factory
        factory = re.match(r"`(\w+)\(", cells[1])[1]
        for key, value in re.findall(r"`(\w+)=([^`]+)`", cells[3]):
            shown.append((task, factory, key, ast.literal_eval(value)))
    return shown


def readme_mismatches(readme: str) -> list[str]:
    found = []
    for task, factory_name, key, value in readme_defaults(readme):
        factory = TASK_DEFS[task].factory
        if factory.__name__ != factory_name:
            found.append(f"README: task {task}'s factory is {factory.__name__}, not {factory_name}")
            continue
        param = inspect.signature(factory).parameters.get(key)
        if param is None:
            found.append(f"README: {factory_name}() has no {key}")
        elif repr(param.default) != repr(value):
            found.append(f"README: {factory_name}({key}={value!r}), but the factory says {param.default!r}")
    return found


def test_the_readmes_task_table_shows_the_factories_defaults():
    readme = (ROOT / "README.md").read_text()
    shown = readme_defaults(readme)
    assert {task for task, *_ in shown} >= {"embed", "classify", "summarize", "translate", "language"}, shown
    assert len(shown) >= 10, shown
    assert readme_mismatches(readme) == []


def test_the_readme_check_fails_on_a_changed_default():
    readme = (ROOT / "README.md").read_text()
    assert "`max_sentences=3`" in readme and "`min_confidence=0.0`" in readme
    changed = readme.replace("`max_sentences=3`", "`max_sentences=4`").replace("`min_confidence=0.0`",
                                                                                "`min_confidence=0.5`")
    assert readme_mismatches(changed) == ["README: summarize(max_sentences=4), but the factory says 3",
                                          "README: detect_language(min_confidence=0.5), but the factory says 0.0"]
