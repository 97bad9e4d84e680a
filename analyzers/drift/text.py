"""Meaning-level text drift: a domain classifier on hashed n-grams, tested on held-out texts.

Half of each sample trains a naive-Bayes classifier (reference vs current) on hashed word unigrams and
bigrams, keeping only n-grams whose share differs clearly (|z| >= 3.5) between the training halves; the other
half is scored, and a one-sided Mann–Whitney test asks whether held-out current texts
score higher than held-out reference texts; then the halves swap roles, and the better of the two folds
counts with its p-value doubled (Bonferroni). The classifier never sees the texts it is tested on, so under
"nothing changed" held-out scores are exchangeable and each fold's p-value is exact up to the normal
approximation, whatever the classifier learned; no fixed AUC cut-off is involved. The AUC is the effect size; its
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
_U64 = (1 << 64) - 1
_BIGRAM_MUL = 0x9E3779B97F4A7C15  # multiply-shift hashing of a bigram's two token hashes
MAX_TEXT_CHARS = 2000  # enough to say what a text is about; bounds the cost of long prompts
_TOKEN_RE = re.compile(r"[^\W\d_]+|\d+")
_SEP = "\x00"  # marks where one text of a batch ends
_SEP_BYTES = _SEP.encode()
_BREAK = f" {_SEP} "
# featurize splits lower-cased UTF-8 at every byte mapped to a space: ASCII that is neither a letter nor a digit.
_CHUNK_BYTES = bytes(b if 48 <= b <= 57 or 97 <= b <= 122 or b >= 128 or b == 0 else 32 for b in range(256))
NUM = "<num>"


def tokens(text: str) -> list[str]:
    """Lower-cased words; every number becomes <num> (order ids and dates say nothing about topic)."""
    return [NUM if t[0].isdigit() else t for t in _TOKEN_RE.findall(text[:MAX_TEXT_CHARS].lower())]


def ngrams(toks: Sequence[str]) -> list[str]:
    return [*toks, *(f"{a} {b}" for a, b in pairwise(toks))]


def _crc(token: str) -> int:
    # crc32, not hash(): Python's str hash is salted per process and would make runs irreproducible.
    return zlib.crc32(token.encode())


def bucket(gram: str) -> int:
    """The hash bucket of a unigram, or of a bigram "a b" (computed from its tokens' hashes, as featurize does)."""
    a, space, b = gram.partition(" ")
    if not space:
        return _crc(gram) & _MASK
    return ((((_crc(a) << 32) | _crc(b)) * _BIGRAM_MUL) & _U64) >> (64 - HASH_BITS)


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
    """Each text as the set of buckets of its unigrams and bigrams (presence, not counts).

    Same result as `bucket` over `ngrams(tokens(text))` for each text, computed for the whole batch at once:
    the joined, lower-cased texts are split at ASCII bytes that are neither letters nor digits (no token of
    `tokens` spans one, and UTF-8 never splits a character there), each distinct chunk is hashed once
    (through the `tokens` regex only if it holds digits or non-ASCII bytes), and bigrams and per-text sets
    are formed with numpy.
    """
    n = len(texts)
    if n == 0:
        return HashedDocs(np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64))
    joined = _BREAK.join([t[:MAX_TEXT_CHARS] for t in texts])
    if joined.count(_SEP) != n - 1:  # a text holds the separator itself (not a token character)
        joined = _BREAK.join([t[:MAX_TEXT_CHARS].replace(_SEP, " ") for t in texts])
    # surrogatepass: a stray surrogate (not a word character) must not fail the batch.
    chunks = joined.lower().encode("utf-8", "surrogatepass").translate(_CHUNK_BYTES).split()
    chunks.append(_SEP_BYTES)  # closes the last text
    vocab: dict[bytes, int] = dict.fromkeys(chunks, 0)
    first = np.empty(len(vocab), dtype=np.int64)  # hash of the chunk's token (-1: text separator)
    split: dict[int, list[int]] = {}  # chunks of several tokens (or none): their token hashes
    num = _crc(NUM)
    crc = zlib.crc32
    for i, chunk in enumerate(vocab):
        vocab[chunk] = i
        if chunk.isalpha():  # ASCII letters only: one token, hashed as is
            first[i] = crc(chunk)
        elif chunk.isdigit():
            first[i] = num
        elif chunk == _SEP_BYTES:
            first[i] = -1
        else:
            hashes = [_crc(t) for t in tokens(chunk.decode("utf-8", "surrogatepass"))]
            if len(hashes) == 1:
                first[i] = hashes[0]
            else:
                split[i] = hashes
                first[i] = 0
    ids = np.fromiter(map(vocab.__getitem__, chunks), dtype=np.int64, count=len(chunks))
    h = first[ids] if not split else _expand(ids, first, split)
    sep = h < 0
    doc: I64 = np.cumsum(sep) - sep  # text of each token
    word = ~sep
    pair = word[:-1] & word[1:]
    key = (h[:-1][pair].astype(np.uint64) << np.uint64(32)) | h[1:][pair].astype(np.uint64)
    bigrams = ((key * np.uint64(_BIGRAM_MUL)) >> np.uint64(64 - HASH_BITS)).astype(np.int64)
    codes = np.concatenate([(doc[word] << HASH_BITS) | (h[word] & _MASK), (doc[:-1][pair] << HASH_BITS) | bigrams])
    codes = _sorted_unique(codes)
    indptr = np.searchsorted(codes >> HASH_BITS, np.arange(n + 1, dtype=np.int64), side="left").astype(np.int64)
    return HashedDocs(indptr, codes & _MASK)


def _expand(ids: I64, first: I64, split: dict[int, list[int]]) -> I64:
    """Token hashes of a chunk sequence where some chunks hold several tokens (or none)."""
    lengths = np.ones(len(first), dtype=np.int64)
    for i, hashes in split.items():
        lengths[i] = len(hashes)
    starts = np.cumsum(lengths) - lengths
    flat = np.empty(int(lengths.sum()), dtype=np.int64)
    single = np.ones(len(first), dtype=bool)
    single[list(split)] = False
    flat[starts[single]] = first[single]
    for i, hashes in split.items():
        flat[starts[i] : starts[i] + len(hashes)] = hashes
    per = lengths[ids]
    out_starts = np.cumsum(per) - per
    return flat[np.repeat(starts[ids] - out_starts, per) + np.arange(int(per.sum()))]


def _sorted_unique(values: I64) -> I64:
    # np.unique hashes int64 in numpy 2 and is ~100x slower than sorting here.
    if len(values) == 0:
        return values
    s = np.sort(values)
    return s[np.concatenate([[True], s[1:] != s[:-1]])]


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


def compact(docs: HashedDocs) -> tuple[HashedDocs, I64]:
    """The docs with buckets renumbered 0..m-1 over those that occur, and the buckets (for `text_drift`)."""
    vocabulary = _sorted_unique(docs.indices)
    return HashedDocs(docs.indptr, np.searchsorted(vocabulary, docs.indices).astype(np.int64)), vocabulary


def _scores(docs: HashedDocs, weights: F64) -> F64:
    if len(docs) == 0:
        return np.zeros(0)
    w = weights[docs.indices]
    sums = np.add.reduceat(np.append(w, 0.0), docs.indptr[:-1]) if len(w) else np.zeros(len(docs))
    empty = docs.indptr[1:] == docs.indptr[:-1]
    return np.where(empty, 0.0, sums)


def _name_buckets(buckets: Sequence[int], texts: Sequence[str], docs: HashedDocs) -> dict[int, str]:
    """An n-gram behind each bucket, read from the first text that has the bucket (only those are tokenized)."""
    if not buckets or len(docs.indices) == 0:
        return {}
    positions = np.flatnonzero(np.isin(docs.indices, np.asarray(buckets, dtype=np.int64)))
    first: dict[int, int] = {}
    doc_of = np.searchsorted(docs.indptr, positions, side="right") - 1
    for b, i in zip(docs.indices[positions].tolist(), doc_of.tolist(), strict=True):
        first.setdefault(b, i)
    found: dict[int, str] = {}
    for i in sorted(set(first.values())):
        for gram in ngrams(tokens(texts[i])):
            g = bucket(gram)
            if first.get(g) == i and g not in found:
                found[g] = gram
    return found


def text_drift(
    reference_texts: Sequence[str],
    current_texts: Sequence[str],
    rng: np.random.Generator,
    *,
    reference_docs: HashedDocs | None = None,
    current_docs: HashedDocs | None = None,
    null_quantile: float = 0.99,
    min_df: int = 2,
    min_z: float = 3.5,
    top_terms: int = 8,
    n_examples: int = 3,
    example_chars: int = 240,
    vocabulary: I64 | None = None,
) -> TextDrift:
    """Domain-classifier test of two text samples (see the module doc). Docs may be pre-featurized.

    `vocabulary` (optional): the docs' indices are already renumbered 0..m-1 and `vocabulary[i]` is the
    hash bucket of index i (`compact`); several tests over subsets of one pool then share that work.
    """
    ref_docs = reference_docs if reference_docs is not None else featurize(reference_texts)
    cur_docs = current_docs if current_docs is not None else featurize(current_texts)
    n_r, n_c = len(ref_docs), len(cur_docs)
    if len(reference_texts) != n_r or len(current_texts) != n_c:
        raise ValueError("texts and their featurized docs differ in length")
    if vocabulary is not None:
        present, ref_local, cur_local = vocabulary, ref_docs, cur_docs
    else:
        # Buckets are renumbered 0..m-1 over the n-grams that occur, so every array below is as small as
        # the vocabulary of the samples (not the 2^20 hash space).
        present = _sorted_unique(np.concatenate([ref_docs.indices, cur_docs.indices]))
        ref_local = HashedDocs(ref_docs.indptr, np.searchsorted(present, ref_docs.indices))
        cur_local = HashedDocs(cur_docs.indptr, np.searchsorted(present, cur_docs.indices))
    m = len(present)
    # Disjoint halves, used both ways round: fit on one and score the other, then swap. Which half a
    # topic's few texts fall in decides a single split at small windows; the better of the two folds,
    # Bonferroni-corrected (p = 2 * min), is valid whatever the folds' dependence and misses far less.
    perm_r, perm_c = rng.permutation(n_r), rng.permutation(n_c)
    half_r, half_c = (perm_r[: n_r // 2], perm_r[n_r // 2 :]), (perm_c[: n_c // 2], perm_c[n_c // 2 :])
    folds = [_fold(ref_local, cur_local, half_r[i], half_c[i], half_r[1 - i], half_c[1 - i], m, min_df, min_z)
             for i in (0, 1)]
    test, s_r, s_c, te_c = min(folds, key=lambda f: f[0].p_value)
    p_value = min(1.0, 2.0 * test.p_value)
    _, tie_term = stats.rank_with_ties(np.concatenate([s_r, s_c]))
    null_auc = stats.auc_null_quantile_normal(len(s_r), len(s_c), tie_term, null_quantile)

    # What changed: n-grams whose share of texts moved most, over both halves.
    share_r = np.bincount(ref_local.indices, minlength=m) / max(n_r, 1)
    share_c = np.bincount(cur_local.indices, minlength=m) / max(n_c, 1)
    diff = share_c - share_r
    diff[(share_r + share_c) * min(n_r, n_c) < 3] = 0.0
    up, down = _top(diff, top_terms), _top(-diff, top_terms)
    # Naming reads hash buckets: docs given over a vocabulary hold local indices, mapped back here.
    ref_hashed = ref_docs if vocabulary is None else HashedDocs(ref_docs.indptr, present[ref_docs.indices])
    cur_hashed = cur_docs if vocabulary is None else HashedDocs(cur_docs.indptr, present[cur_docs.indices])
    names = _name_buckets([int(present[i]) for i in up], current_texts, cur_hashed)
    names.update(_name_buckets([int(present[i]) for i in down], reference_texts, ref_hashed))
    rising = [Term(names[int(present[i])], float(share_r[i]), float(share_c[i])) for i in up
              if int(present[i]) in names]
    falling = [Term(names[int(present[i])], float(share_r[i]), float(share_c[i])) for i in down
               if int(present[i]) in names]
    best = te_c[np.argsort(-s_c, kind="stable")[:n_examples]] if len(s_c) else np.zeros(0, dtype=np.int64)
    examples = [_clip(current_texts[int(i)], example_chars) for i in best]
    return TextDrift(test.auc, p_value, null_auc, len(s_r), len(s_c), rising, falling, examples)


def _fold(
    ref: HashedDocs, cur: HashedDocs, tr_r: I64, tr_c: I64, te_r: I64, te_c: I64, m: int, min_df: int,
    min_z: float,
) -> tuple[stats.RankTest, F64, F64, I64]:
    """Fit the classifier on (tr_r, tr_c), score (te_r, te_c): the one-sided test and the held-out scores."""
    train_r, train_c = ref.take(tr_r), cur.take(tr_c)
    n_tr, n_tc = len(train_r), len(train_c)
    r = np.bincount(train_r.indices, minlength=m).astype(np.float64)
    c = np.bincount(train_c.indices, minlength=m).astype(np.float64)
    a = 1.0
    weights = np.log((c + a) / (n_tc + 2 * a)) - np.log((r + a) / (n_tr + 2 * a))
    # Only n-grams whose share differs clearly between the training halves vote: common words carry
    # noisy weights that would drown a topic held by a few distinctive terms (the selection uses the
    # training half only, so the held-out test stays valid).
    pooled = (r + c) / max(n_tr + n_tc, 1)
    se = np.sqrt(np.maximum(pooled * (1 - pooled) * (1 / max(n_tr, 1) + 1 / max(n_tc, 1)), 1e-12))
    weights[(np.abs(c / max(n_tc, 1) - r / max(n_tr, 1)) < min_z * se) | (r + c < min_df)] = 0.0
    s_r = _scores(ref.take(te_r), weights)
    s_c = _scores(cur.take(te_c), weights)
    return stats.mann_whitney(s_r, s_c, alternative="greater"), s_r, s_c, te_c


def _top(values: F64, k: int) -> list[int]:
    """Indices of the k largest positive values, largest first."""
    nz = np.flatnonzero(values > 0)
    k = min(k, len(nz))
    if k == 0:
        return []
    part = nz[np.argpartition(-values[nz], k - 1)[:k]]
    return [int(b) for b in part[np.argsort(-values[part], kind="stable")]]


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
