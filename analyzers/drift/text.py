"""Meaning-level text drift: a domain classifier on hashed n-grams, tested on held-out texts.

Half of each sample trains a naive-Bayes classifier (reference vs current) on hashed word unigrams and
bigrams, keeping only n-grams whose share differs clearly (|z| >= 4) between the training halves; the other
half is scored, and a one-sided Mann–Whitney test asks whether held-out current texts
score higher than held-out reference texts. The classifier never sees the texts it is tested on, so under
"nothing changed" held-out scores are exchangeable and the p-value is exact up to the normal approximation,
whatever the classifier learned; no fixed AUC cut-off is involved. The AUC is the effect size; its
threshold is the permutation null at the sample's size, floored by a practical minimum.

The n-grams that best separate the windows and the held-out current texts the classifier finds most
"current" are returned, so a person can see what changed.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from analyzers.drift import stats

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

HASH_BITS = 20
_MASK = (1 << HASH_BITS) - 1
MAX_TEXT_CHARS = 2000  # enough to say what a text is about; bounds the cost of long prompts
_TOKEN_RE = re.compile(r"[^\W\d_]+|\d+")
NUM = "<num>"


def tokens(text: str) -> list[str]:
    """Lower-cased words; every number becomes <num> (order ids and dates say nothing about topic)."""
    return [NUM if t[0].isdigit() else t for t in _TOKEN_RE.findall(text[:MAX_TEXT_CHARS].lower())]


def ngrams(toks: Sequence[str]) -> list[str]:
    return [*toks, *(f"{a} {b}" for a, b in pairwise(toks))]


def bucket(gram: str) -> int:
    # crc32, not hash(): Python's str hash is salted per process and would make runs irreproducible.
    return zlib.crc32(gram.encode()) & _MASK


@dataclass(frozen=True, slots=True)
class HashedDocs:
    """Texts as sets of hashed n-gram buckets (CSR layout: doc i owns indices[indptr[i]:indptr[i+1]])."""

    indptr: I64
    indices: I64

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def take(self, rows: Sequence[int] | I64) -> HashedDocs:
        idx = np.asarray(rows, dtype=np.int64)
        starts, ends = self.indptr[idx], self.indptr[idx + 1]
        lengths = ends - starts
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        if len(idx) == 0 or indptr[-1] == 0:
            return HashedDocs(indptr, np.zeros(0, dtype=np.int64))
        offsets = np.repeat(starts - indptr[:-1], lengths)
        return HashedDocs(indptr, self.indices[np.arange(indptr[-1]) + offsets])

    @staticmethod
    def concat(parts: Sequence[HashedDocs]) -> HashedDocs:
        indptr = [np.zeros(1, dtype=np.int64)]
        base = 0
        for p in parts:
            indptr.append(p.indptr[1:] + base)
            base += int(p.indptr[-1])
        return HashedDocs(np.concatenate(indptr), np.concatenate([p.indices for p in parts]))


def featurize(texts: Sequence[str]) -> HashedDocs:
    """Each text as the set of buckets of its unigrams and bigrams (presence, not counts)."""
    crc = zlib.crc32
    token_re = _TOKEN_RE
    lengths = np.zeros(len(texts), dtype=np.int64)
    chunks: list[list[int]] = []
    for i, text in enumerate(texts):
        toks = [NUM if t[0].isdigit() else t for t in token_re.findall(text[:MAX_TEXT_CHARS].lower())]
        ids = {crc(t.encode()) & _MASK for t in toks}
        ids.update(crc(f"{a} {b}".encode()) & _MASK for a, b in pairwise(toks))
        lengths[i] = len(ids)
        chunks.append(list(ids))
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = np.fromiter((x for c in chunks for x in c), dtype=np.int64, count=int(indptr[-1]))
    return HashedDocs(indptr, flat)


@dataclass(frozen=True, slots=True)
class Term:
    text: str
    reference_share: float  # share of reference texts containing it
    current_share: float


@dataclass(frozen=True, slots=True)
class TextDrift:
    auc: float
    p_value: float
    null_auc: float  # permutation-null quantile of the AUC at these sample sizes
    n_reference: int  # held-out texts scored
    n_current: int
    rising: list[Term] = field(default_factory=list)  # more frequent now
    falling: list[Term] = field(default_factory=list)  # less frequent now
    examples: list[str] = field(default_factory=list)  # held-out current texts most unlike the reference


def _doc_frequency(docs: HashedDocs) -> F64:
    return np.bincount(docs.indices, minlength=1 << HASH_BITS).astype(np.float64)


def _scores(docs: HashedDocs, weights: F64) -> F64:
    if len(docs) == 0:
        return np.zeros(0)
    w = weights[docs.indices]
    sums = np.add.reduceat(np.append(w, 0.0), docs.indptr[:-1]) if len(w) else np.zeros(len(docs))
    empty = docs.indptr[1:] == docs.indptr[:-1]
    return np.where(empty, 0.0, sums)


def _terms_for(buckets: set[int], texts: Sequence[str], limit: int = 600) -> dict[int, str]:
    found: dict[int, str] = {}
    for text in texts[:limit]:
        for gram in ngrams(tokens(text)):
            b = bucket(gram)
            if b in buckets and b not in found:
                found[b] = gram
        if len(found) == len(buckets):
            break
    return found


def text_drift(
    reference_texts: Sequence[str],
    current_texts: Sequence[str],
    rng: np.random.Generator,
    *,
    reference_docs: HashedDocs | None = None,
    current_docs: HashedDocs | None = None,
    null_quantile: float = 0.99,
    resamples: int = 200,
    min_df: int = 2,
    min_z: float = 4.0,
    top_terms: int = 8,
    n_examples: int = 3,
    example_chars: int = 240,
) -> TextDrift:
    """Domain-classifier test of two text samples (see the module doc). Docs may be pre-featurized."""
    ref_docs = reference_docs if reference_docs is not None else featurize(reference_texts)
    cur_docs = current_docs if current_docs is not None else featurize(current_texts)
    n_r, n_c = len(ref_docs), len(cur_docs)
    if len(reference_texts) != n_r or len(current_texts) != n_c:
        raise ValueError("texts and their featurized docs differ in length")
    # Disjoint halves: fit on one, test on the other.
    perm_r, perm_c = rng.permutation(n_r), rng.permutation(n_c)
    tr_r, te_r = perm_r[: n_r // 2], perm_r[n_r // 2 :]
    tr_c, te_c = perm_c[: n_c // 2], perm_c[n_c // 2 :]
    train_r, train_c = ref_docs.take(tr_r), cur_docs.take(tr_c)
    df_r, df_c = _doc_frequency(train_r), _doc_frequency(train_c)
    a = 1.0
    weights = np.log((df_c + a) / (len(train_c) + 2 * a)) - np.log((df_r + a) / (len(train_r) + 2 * a))
    weights[(df_r + df_c) < min_df] = 0.0
    # Only n-grams whose share differs clearly between the training halves vote: common words carry
    # noisy weights that would drown a topic held by a few distinctive terms (the selection uses the
    # training half only, so the held-out test stays valid).
    n_tr, n_tc = len(train_r), len(train_c)
    pooled = (df_r + df_c) / max(n_tr + n_tc, 1)
    se = np.sqrt(np.maximum(pooled * (1 - pooled) * (1 / max(n_tr, 1) + 1 / max(n_tc, 1)), 1e-12))
    weights[np.abs(df_c / max(n_tc, 1) - df_r / max(n_tr, 1)) < min_z * se] = 0.0
    s_r = _scores(ref_docs.take(te_r), weights)
    s_c = _scores(cur_docs.take(te_c), weights)
    test = stats.mann_whitney(s_r, s_c, alternative="greater")
    _, tie_term = stats.rank_with_ties(np.concatenate([s_r, s_c]))
    null_auc = stats.auc_null_quantile_normal(len(s_r), len(s_c), tie_term, null_quantile)

    # What changed: n-grams whose share of texts moved most, over both halves.
    full_r, full_c = _doc_frequency(ref_docs) / max(n_r, 1), _doc_frequency(cur_docs) / max(n_c, 1)
    diff = full_c - full_r
    diff[(full_r + full_c) * min(n_r, n_c) < 3] = 0.0
    up = _top(diff, top_terms)
    down = _top(-diff, top_terms)
    names = _terms_for(set(up), current_texts)
    names.update(_terms_for(set(down), reference_texts))
    rising = [Term(names[b], float(full_r[b]), float(full_c[b])) for b in up if b in names]
    falling = [Term(names[b], float(full_r[b]), float(full_c[b])) for b in down if b in names]
    best = te_c[np.argsort(-s_c, kind="stable")[:n_examples]] if len(s_c) else np.zeros(0, dtype=np.int64)
    examples = [_clip(current_texts[int(i)], example_chars) for i in best]
    return TextDrift(test.auc, test.p_value, null_auc, len(s_r), len(s_c), rising, falling, examples)


def _top(values: F64, k: int) -> list[int]:
    """Indices of the k largest positive values, largest first (only non-zero cells of the 2^20 considered)."""
    nz = np.flatnonzero(values > 0)
    k = min(k, len(nz))
    if k == 0:
        return []
    part = nz[np.argpartition(-values[nz], k - 1)[:k]]
    return [int(b) for b in part[np.argsort(-values[part], kind="stable")]]


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
