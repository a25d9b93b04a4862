"""Benchmark the reward's noun tagger: what running the parser (which the POS tags depend on) costs.

Three spaCy pipelines of the same package, side by side on every product and goal name of the 1k
catalogue: ``no parser`` (the tagger and attribute ruler only: the earlier default, whose tags differ
from the full pipeline's where an attribute-ruler pattern reads the parser's labels), ``tagger`` (the
project's :class:`~environments.webshop.nouns.SpacyNounTagger` pipeline: the parser runs, NER and
the lemmatizer do not) and ``full`` (every component the package enables). For each: load time, time
per name (uncached: each name tagged once, as on its first purchase in a process), and how many
names get other nouns than the full pipeline gives. Times are ratios to ``no parser``.

Usage::

    python benchmarks/bench_webshop_nouns.py
    python benchmarks/bench_webshop_nouns.py --repeats 3 --json nouns.json
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from environments.webshop.catalogue import load_catalogue
from environments.webshop.nouns import DEFAULT_TAGGER, NOUN_TAGS, SpacyNounTagger

PIPELINES: dict[str, tuple[str, ...]] = {
    "no parser": ("parser", "ner", "lemmatizer", "senter"),
    "tagger": SpacyNounTagger._SKIPPED_COMPONENTS,
    "full": (),
}
"""Pipeline label -> the components left out when loading."""


def catalogue_names() -> list[str]:
    catalogue = load_catalogue()
    goals = catalogue.goals(False) + catalogue.goals(True)
    return sorted({p.name for p in catalogue.products} | {g.name for g in goals})


def measure_once(package: str, excluded: tuple[str, ...], names: list[str]) -> dict[str, Any]:
    """One load of the pipeline and one uncached pass over ``names``."""
    import spacy

    started = time.perf_counter()
    nlp = spacy.load(package, exclude=list(excluded))
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    nouns = [tuple(t.text.lower() for t in nlp(name) if t.pos_ in NOUN_TAGS) for name in names]
    per_name_ms = 1000 * (time.perf_counter() - started) / len(names)
    return {"load_s": load_s, "per_name_ms": per_name_ms, "components": nlp.pipe_names, "nouns": nouns}


def measure(package: str, names: list[str], repeats: int) -> dict[str, dict[str, Any]]:
    """Best of ``repeats`` rounds per pipeline; each round runs every pipeline in turn, so that a busy
    spell of the shared machine hits them alike, and the minimum is the least disturbed run."""
    import spacy

    spacy.load(package)  # import and registry warm-up, so the first pipeline measured pays no more
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in PIPELINES}
    for _ in range(repeats):
        for label, excluded in PIPELINES.items():
            runs[label].append(measure_once(package, excluded, names))
    return {
        label: {**done[0], "load_s": min(r["load_s"] for r in done), "per_name_ms": min(r["per_name_ms"] for r in done)}
        for label, done in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="loads and passes per pipeline (best is kept)")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    package = DEFAULT_TAGGER.removeprefix("spacy:")
    names = catalogue_names()
    results = measure(package, names, args.repeats)
    base = results["no parser"]
    rows = []
    for label, result in results.items():
        differ = sum(a != b for a, b in zip(result["nouns"], results["full"]["nouns"], strict=True))
        rows.append({
            "pipeline": label, "components": ", ".join(result["components"]), "load_s": result["load_s"],
            "per_name_ms": result["per_name_ms"], "per_name_ratio": result["per_name_ms"] / base["per_name_ms"],
            "load_ratio": result["load_s"] / base["load_s"], "names_differing_from_full": differ,
        })
    print(f"{len(names)} names, {package}, best of {args.repeats}")
    print(f"{'pipeline':<10} {'load s':>7} {'x':>5} {'ms/name':>8} {'x':>5} {'differ':>6}  components")
    for row in rows:
        print(f"{row['pipeline']:<10} {row['load_s']:>7.2f} {row['load_ratio']:>5.2f} {row['per_name_ms']:>8.2f} "
              f"{row['per_name_ratio']:>5.2f} {row['names_differing_from_full']:>6}  {row['components']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"names": len(names), "package": package, "repeats": args.repeats, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
