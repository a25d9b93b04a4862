"""BM25 product search that reproduces the original WebShop Lucene 8 / Pyserini index.

The original site indexes one JSON document per product (``contents`` = lowercased title,
description, first bullet point and options) with Anserini's default English analyzer, and searches
it with Lucene 8's ``BM25Similarity(k1=0.9, b=0.4)`` through a bag-of-words query. Rankings are part
of the benchmark: an agent that searches well on one engine can fail on another, so this module
reproduces the scores bit for bit where it can:

* document length = number of indexed tokens, stored as Lucene's one-byte norm
  (``SmallFloat.intToByte4``; exact below 24, 4 significant bits above) and decoded at search time;
* ``avgdl`` = total tokens / documents, from the exact counts;
* ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))``, per-term score
  ``w - w / (1 + tf / (k1 (1 - b + b dl / avgdl)))`` with ``w = boost * idf`` (Lucene >= 8 dropped the
  ``(k1 + 1)`` factor), all in float32 as Lucene computes them; clause scores summed in double;
* a query term repeated n times is one clause boosted n times (Anserini's BagOfWordsQueryGenerator);
* ties are broken by ascending document id *string* (Anserini sorts by score, then the ``id`` field).

The index is a CSR inverted index in numpy arrays so that a query touches only its postings. On
the 1k catalogue it reproduces the 300-query reference (top-50 lists and float32 scores) exactly.

Usage::

    index = BM25Index(
        (p.asin, document_text(p.title, p.description, p.bullet_points, p.options)) for p in products
    )
    index.search("long lasting l'eau d'issey 6.76 fl oz")  # [(asin, score), ...], best first
"""

from __future__ import annotations

import logging
import math
import sys
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from environments.webshop.analysis import analyze, analyze_token, tokenize

log = logging.getLogger(__name__)

__all__ = [
    "SEARCH_RETURN_N",
    "BM25Index",
    "byte4_to_int",
    "document_text",
    "documents_from_raw_catalogue",
    "int_to_byte4",
    "options_from_raw",
]

#: The original engine returns the top 50 hits (10 per results page).
SEARCH_RETURN_N = 50


# --------------------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------------------
def document_text(
    title: str, description: str, bullet_points: Sequence[str], options: Mapping[str, Sequence[str]]
) -> str:
    """The ``contents`` the original indexes: title, description, first bullet, options, lowercased.

    Options render as ``"name: v1, v2"`` groups joined by ``", and "``. A product without bullet
    points contributes an empty bullet (the original would fail on it; none occurs in the data).
    """
    option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in options.items())
    first_bullet = bullet_points[0] if bullet_points else ""
    return " ".join([title, description, first_bullet, option_text]).lower()


def options_from_raw(customization_options: Any) -> dict[str, list[str]]:
    """Option groups as the original loader builds them from ``customization_options``.

    Group names are lowercased; values are stripped, ``/`` becomes ``" | "``, lowercased; groups
    whose contents are null are dropped; an empty string / null means no options.
    """
    options: dict[str, list[str]] = {}
    if not customization_options:
        return options
    for name, contents in customization_options.items():
        if contents is None:
            continue
        options[name.lower()] = [c["value"].strip().replace("/", " | ").lower() for c in contents]
    return options


def documents_from_raw_catalogue(items: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """``(asin, contents)`` per product of a raw ``items_shuffle_*.json`` list, in index order.

    Mirrors the original loader: products whose asin is ``"nan"`` or longer than 10 characters are
    skipped, as are repeated asins; the remaining order is the documents-file order.
    """
    docs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in items:
        asin = item["asin"]
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        bullets = item["small_description"]
        if not isinstance(bullets, list):
            bullets = [bullets]
        text = document_text(
            item["name"], item["full_description"], bullets, options_from_raw(item["customization_options"])
        )
        docs.append((asin, text))
    return docs


# --------------------------------------------------------------------------------------------------
# Lucene's one-byte length norm (SmallFloat.intToByte4 / byte4ToInt)
# --------------------------------------------------------------------------------------------------
def _long_to_int4(i: int) -> int:
    """Float-like 4-significant-bit code: 3 mantissa bits plus a shift."""
    num_bits = i.bit_length()
    if num_bits < 4:
        return i
    shift = num_bits - 4
    return ((i >> shift) & 0x07) | ((shift + 1) << 3)


def _int4_to_long(code: int) -> int:
    bits = code & 0x07
    shift = (code >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


_NUM_FREE_VALUES = 255 - _long_to_int4(2**31 - 1)  # 24: lengths below this are stored exactly


def int_to_byte4(length: int) -> int:
    """Encode a field length into Lucene's norm byte (0..255)."""
    if length < _NUM_FREE_VALUES:
        return length
    return _NUM_FREE_VALUES + _long_to_int4(length - _NUM_FREE_VALUES)


def byte4_to_int(code: int) -> int:
    """Decode a norm byte back to the (quantised) length BM25 sees."""
    if code < _NUM_FREE_VALUES:
        return code
    return _NUM_FREE_VALUES + _int4_to_long(code - _NUM_FREE_VALUES)


_LENGTH_TABLE = np.array([byte4_to_int(i) for i in range(256)], dtype=np.float32)


# --------------------------------------------------------------------------------------------------
# Index
# --------------------------------------------------------------------------------------------------
class BM25Index:
    """Inverted index over ``(doc_id, text)`` pairs with Lucene 8 BM25 scoring.

    Postings are stored per term as contiguous slices of ``_post_docs`` (document numbers) and
    ``_post_x`` (float32 ``tf / norm`` with the length normalisation folded in), so a query costs one
    vectorised pass per query term.
    """

    def __init__(self, documents: Iterable[tuple[str, str]], k1: float = 0.9, b: float = 0.4) -> None:
        started = time.perf_counter()
        self.k1 = k1
        self.b = b

        # Raw token -> term id (-1 for stop words): the filter chain runs once per distinct token.
        token_ids: dict[str, int] = {}
        vocab: dict[str, int] = {}
        ids: list[str] = []
        raw_counts: list[int] = []
        stream = array("i")  # term id per raw token; compact: 100k products have ~10^7 tokens
        for doc_id, text in documents:
            tokens = tokenize(text)
            for token in set(tokens).difference(token_ids):
                term = analyze_token(token)
                token_ids[token] = -1 if term is None else vocab.setdefault(term, len(vocab))
            stream.extend(map(token_ids.__getitem__, tokens))
            ids.append(doc_id)
            raw_counts.append(len(tokens))

        n_docs = len(ids)
        self.doc_ids: list[str] = ids
        self._vocab = vocab
        tids = np.frombuffer(stream, dtype=np.int32).astype(np.int64)
        docs = np.repeat(np.arange(n_docs, dtype=np.int64), raw_counts)
        kept = tids >= 0
        tids, docs = tids[kept], docs[kept]
        # Field length = tokens that reach the index (stop words removed), as Lucene counts it.
        doc_len = np.bincount(docs, minlength=n_docs).astype(np.int64)
        # Lucene's docCount / sumTotalTermFreq only see documents that indexed at least one token.
        self.num_docs = int(np.count_nonzero(doc_len))
        total_tokens = int(doc_len.sum())
        self.avgdl = np.float32(total_tokens / self.num_docs) if self.num_docs else np.float32(1.0)

        # (term, doc) pairs -> sorted unique keys with counts = postings with term frequencies.
        keys, tf = np.unique(tids * max(n_docs, 1) + docs, return_counts=True)
        post_terms = keys // max(n_docs, 1)
        self._post_docs = (keys % max(n_docs, 1)).astype(np.int32)
        self._offsets = np.searchsorted(post_terms, np.arange(len(vocab) + 1)).astype(np.int64)

        # Lucene caches 1 / (k1 (1 - b + b dl / avgdl)) for the 256 norm bytes, in float32.
        norm_bytes = np.array([int_to_byte4(n) for n in range(int(doc_len.max(initial=0)) + 1)])
        f32 = np.float32
        norm = f32(k1) * ((f32(1) - f32(b)) + f32(b) * _LENGTH_TABLE / self.avgdl)
        norm_inverse = (f32(1) / norm).astype(np.float32)
        doc_norm_inverse = norm_inverse[norm_bytes[doc_len]]
        self._post_x = tf.astype(np.float32) * doc_norm_inverse[self._post_docs]

        # Ties rank by ascending id string: precompute each document's position in that order.
        self._tie_rank = np.empty(n_docs, dtype=np.int64)
        self._tie_rank[np.argsort(np.asarray(ids, dtype=object), kind="stable")] = np.arange(n_docs)
        log.debug(
            "BM25 index: %d docs, %d terms, %d postings in %.3fs",
            n_docs,
            len(vocab),
            len(keys),
            time.perf_counter() - started,
        )

    def __len__(self) -> int:
        return len(self.doc_ids)

    @property
    def nbytes(self) -> int:
        """Approximate memory held by the index (arrays, vocabulary and id strings)."""
        arrays = (self._post_docs, self._post_x, self._offsets, self._tie_rank)
        strings = sum(sys.getsizeof(t) for t in self._vocab) + sum(sys.getsizeof(d) for d in self.doc_ids)
        return sum(a.nbytes for a in arrays) + sys.getsizeof(self._vocab) + sys.getsizeof(self.doc_ids) + strings

    def idf(self, df: int) -> np.float32:
        """Lucene's BM25 idf, computed in double and stored as float."""
        return np.float32(math.log(1.0 + (self.num_docs - df + 0.5) / (df + 0.5)))

    def search(self, query: str, k: int = SEARCH_RETURN_N) -> list[tuple[str, float]]:
        """Top ``k`` ``(doc_id, score)`` for a keyword query, best first, ties by doc id."""
        counts = Counter(analyze(query))
        scores: np.ndarray | None = None
        for term, boost in counts.items():
            tid = self._vocab.get(term)
            if tid is None:
                continue
            lo, hi = self._offsets[tid], self._offsets[tid + 1]
            weight = np.float32(boost) * self.idf(hi - lo)
            x = self._post_x[lo:hi]
            # Lucene: weight - weight / (1 + freq * normInverse), in float32.
            contribution = weight - weight / (np.float32(1) + x)
            if scores is None:
                scores = np.zeros(len(self.doc_ids), dtype=np.float64)
            scores[self._post_docs[lo:hi]] += contribution
        if scores is None or k <= 0:
            return []
        matched = np.flatnonzero(scores)
        final = scores[matched].astype(np.float32)
        if len(matched) > k:
            # Keep every document scoring at least the k-th best so that ties are resolved by id.
            kth = np.partition(final, len(final) - k)[len(final) - k]
            keep = final >= kth
            matched, final = matched[keep], final[keep]
        order = np.lexsort((self._tie_rank[matched], -final))[:k]
        return [(self.doc_ids[i], float(s)) for i, s in zip(matched[order], final[order], strict=True)]
