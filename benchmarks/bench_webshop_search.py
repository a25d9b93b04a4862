"""Benchmark the WebShop BM25 engine: build time, memory and query latency as the catalogue grows.

Runs the real 1k catalogue and synthetic catalogues (10k, 100k by default) made by recombining the
titles, descriptions, bullet points and options of real products with a fixed seed, so that the
vocabulary and document lengths stay realistic. Queries are the 300 reference queries (or the
products' own ``query`` fields when the reference file is absent). Each size is compared in the same
run against a naive baseline that scores every document for every query in a Python loop.

Usage::

    python benchmarks/bench_webshop_search.py                 # 1k, 10k, 100k
    python benchmarks/bench_webshop_search.py --sizes 1000 --naive-queries 300
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from environments.webshop import analysis
from environments.webshop.data_files import CATALOGUE_FILE
from environments.webshop.search import (
    BM25Index,
    byte4_to_int,
    document_text,
    documents_from_raw_catalogue,
    int_to_byte4,
    options_from_raw,
)
from foundation.data import data_file, data_root

log = logging.getLogger("bench_webshop_search")


def load_queries(items: list[dict[str, Any]]) -> list[str]:
    """The 300 reference queries, or the catalogue's own queries if the reference is missing."""
    path = data_root().parent / "reference" / "webshop_search_reference_300.json"
    if path.is_file():
        with open(path) as f:
            return list(json.load(f))
    log.warning("reference queries not found at %s; using product queries", path)
    return sorted({item["query"] for item in items})[:300]


def synthetic_catalogue(items: list[dict[str, Any]], n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` documents whose fields are drawn independently from real products (fixed seed)."""
    rng = random.Random(seed)
    fields = []
    for item in items:
        bullets = item["small_description"]
        fields.append(
            (
                item["name"],
                item["full_description"],
                bullets if isinstance(bullets, list) else [bullets],
                options_from_raw(item["customization_options"]),
            )
        )
    docs = []
    for i in range(n):
        title = rng.choice(fields)[0]
        description = rng.choice(fields)[1]
        bullets = rng.choice(fields)[2]
        options = rng.choice(fields)[3]
        docs.append((f"S{i:09d}", document_text(title, description, bullets, options)))
    return docs


class NaiveBM25:
    """Reference-style baseline: per-document term counters, every document scored per query."""

    def __init__(self, documents: Sequence[tuple[str, str]], k1: float = 0.9, b: float = 0.4) -> None:
        analyzer = analysis.EnglishAnalyzer()
        self.ids = [doc_id for doc_id, _ in documents]
        self.tfs = [Counter(analyzer.analyze(text)) for _, text in documents]
        lengths = [sum(tf.values()) for tf in self.tfs]
        self.n = sum(1 for n in lengths if n)
        avgdl = sum(lengths) / max(self.n, 1)
        self.norms = [k1 * (1 - b + b * byte4_to_int(int_to_byte4(n)) / avgdl) for n in lengths]
        self.df: Counter[str] = Counter()
        for tf in self.tfs:
            self.df.update(tf.keys())

    def search(self, query: str, k: int = 50) -> list[tuple[str, float]]:
        terms = Counter(analysis.analyze(query))
        idf = {t: math.log(1 + (self.n - self.df[t] + 0.5) / (self.df[t] + 0.5)) for t in terms}
        scored = []
        for doc, (tf, norm) in enumerate(zip(self.tfs, self.norms, strict=True)):
            score = 0.0
            for term, boost in terms.items():
                freq = tf.get(term)
                if freq:
                    score += boost * idf[term] * freq / (freq + norm)
            if score > 0:
                scored.append((-score, self.ids[doc]))
        scored.sort()
        return [(doc_id, -neg) for neg, doc_id in scored[:k]]


def rss_bytes() -> int | None:
    """Current resident set size (Linux), to show the index's real memory growth."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def latencies_ms(search: Callable[[str], object], queries: Sequence[str]) -> list[float]:
    out = []
    for query in queries:
        started = time.perf_counter()
        search(query)
        out.append((time.perf_counter() - started) * 1e3)
    return out


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def bench_size(label: str, docs: list[tuple[str, str]], queries: list[str], naive_queries: int) -> dict[str, Any]:
    rss_before = rss_bytes()
    started = time.perf_counter()
    index = BM25Index(docs)
    build_s = time.perf_counter() - started
    rss_after = rss_bytes()

    analysis.analyze.cache_clear()  # first pass pays query analysis, as a new query would
    cold = latencies_ms(index.search, queries)
    warm = latencies_ms(index.search, queries)

    naive = NaiveBM25(docs)
    subset = queries[:naive_queries]
    naive_ms = latencies_ms(naive.search, subset)
    agree = statistics.fmean(
        [a for a, _ in index.search(q)[:10]] == [a for a, _ in naive.search(q)[:10]] for q in subset[:20]
    )
    return {
        "label": label,
        "docs": len(docs),
        "build_s": build_s,
        "index_mb": index.nbytes / 2**20,
        "rss_mb": None if rss_before is None or rss_after is None else (rss_after - rss_before) / 2**20,
        "cold_p50": pct(cold, 50),
        "cold_p95": pct(cold, 95),
        "warm_p50": pct(warm, 50),
        "warm_p95": pct(warm, 95),
        "naive_p50": pct(naive_ms, 50),
        "naive_p95": pct(naive_ms, 95),
        "naive_n": len(subset),
        "agree": agree,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'catalogue':<16}{'docs':>8}{'build s':>9}{'index MB':>10}{'RSS +MB':>9}"
        f"{'p50 ms':>8}{'p95 ms':>8}{'warm p50':>9}{'warm p95':>9}"
        f"{'naive n':>8}{'naive p50':>10}{'naive p95':>10}{'speedup':>9}{'top10=':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        rss = "n/a" if r["rss_mb"] is None else f"{r['rss_mb']:.1f}"
        print(
            f"{r['label']:<16}{r['docs']:>8}{r['build_s']:>9.2f}{r['index_mb']:>10.1f}{rss:>9}"
            f"{r['cold_p50']:>8.3f}{r['cold_p95']:>8.3f}{r['warm_p50']:>9.3f}{r['warm_p95']:>9.3f}"
            f"{r['naive_n']:>8}{r['naive_p50']:>10.1f}{r['naive_p95']:>10.1f}{r['naive_p50'] / r['cold_p50']:>8.0f}x"
            f"{r['agree']:>8.0%}"
        )
    print(
        "\np50/p95: first pass over the queries (query analysis not cached); warm: second pass.\n"
        "naive: every document scored per query in a Python loop, over the first 'naive n' queries;\n"
        "speedup = naive p50 / p50; top10=: share of the first 20 queries whose first page is\n"
        "identical in both (the naive scan uses float64, so exact-score ties may order differently)."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000], help="synthetic sizes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic catalogues")
    parser.add_argument(
        "--naive-queries",
        type=int,
        default=None,
        help="queries for the naive baseline per size (default: all at 1k, fewer for larger sizes)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    with open(data_file(CATALOGUE_FILE)) as f:
        items = json.load(f)
    queries = load_queries(items)

    def naive_budget(n_docs: int) -> int:
        if args.naive_queries is not None:
            return args.naive_queries
        return max(10, min(len(queries), 300_000 // n_docs))

    rows = [bench_size("real 1k", documents_from_raw_catalogue(items), queries, naive_budget(len(items)))]
    log.info("real 1k done")
    for size in args.sizes:
        docs = synthetic_catalogue(items, size, args.seed)
        rows.append(bench_size(f"synthetic {size // 1000}k", docs, queries, naive_budget(size)))
        log.info("synthetic %d done", size)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
