"""Drift statistics against scipy's reference implementations, and the descriptors' behaviour."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import stats as sps

from analyzers.drift import descriptors as d
from analyzers.drift import stats
from analyzers.drift.detect import CategoricalInput, DriftConfig, bin_counts, evaluate_categorical, quantile_edges
from analyzers.drift.features import Direction
from analyzers.drift.text import HashedDocs, bucket, compact, featurize, ngrams, text_drift, tokens


def test_chi_square_matches_scipy_when_no_cell_is_small() -> None:
    ref, cur = np.array([120, 340, 90, 50]), np.array([100, 360, 120, 30])
    ours = stats.chi_square_two_sample(ref, cur)
    chi2, p, dof, _ = sps.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert ours.dof == dof and ours.merged == 0
    assert ours.statistic == pytest.approx(chi2) and ours.p_value == pytest.approx(p)


def test_small_cells_are_merged_until_every_cell_is_testable() -> None:
    ref, cur = np.array([500, 480, 3, 1, 0, 2]), np.array([510, 470, 1, 4, 2, 0])
    r, c, merged = stats.merge_small_cells(ref, cur, 5.0)
    assert r.sum() == ref.sum() and c.sum() == cur.sum()
    expected = (r + c) * min(r.sum(), c.sum()) / (r.sum() + c.sum())
    assert (expected >= 5).all() and merged >= 3


def test_mann_whitney_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 20, 300), rng.integers(2, 22, 250)
    ours = stats.mann_whitney(x, y)
    ref = sps.mannwhitneyu(y, x, alternative="two-sided", method="asymptotic", use_continuity=True)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    assert ours.auc == pytest.approx(ref.statistic / (len(x) * len(y)))
    greater = stats.mann_whitney(x, y, alternative="greater")
    assert greater.p_value == pytest.approx(
        sps.mannwhitneyu(y, x, alternative="greater", method="asymptotic").pvalue, rel=1e-6)


def test_benjamini_hochberg_matches_the_textbook_example() -> None:
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    assert stats.benjamini_hochberg(p) == pytest.approx(sps.false_discovery_control(p, method="bh"))


def test_divergences_state_their_base_and_bounds() -> None:
    assert stats.js_divergence([1, 0], [0, 1], base=2) == pytest.approx(1.0)
    assert stats.js_divergence([1, 0], [0, 1], base=math.e) == pytest.approx(math.log(2))
    assert stats.js_divergence([5, 5], [5, 5]) == 0.0
    assert stats.hellinger([1, 0], [0, 1]) == pytest.approx(1.0)
    assert stats.psi([50, 50], [50, 50]) == 0.0 and stats.psi([90, 10], [50, 50]) > 0.5
    a, b = np.array([[3.0, 7.0], [5.0, 5.0]]), np.array([[7.0, 3.0], [5.0, 5.0]])
    assert stats.js_batch(a, b) == pytest.approx([stats.js_divergence(a[0], b[0]), 0.0])
    assert stats.psi_batch(a, b)[0] == pytest.approx(stats.psi(a[0], b[0]))


def test_wasserstein_from_samples_and_from_bins() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(0, 1, 4000), rng.normal(0.5, 1, 4000)
    assert stats.wasserstein_samples(x, y) == pytest.approx(sps.wasserstein_distance(x, y))
    edges = quantile_edges(x, 20)
    binned = stats.wasserstein_binned(edges, bin_counts(x, edges), bin_counts(y, edges), min(x.min(), y.min()),
                                      max(x.max(), y.max()))
    assert binned == pytest.approx(0.5, abs=0.1)


def test_quantile_bins_keep_atoms_apart_and_match_sql_semantics() -> None:
    values = np.array([14] * 60 + [13] * 20 + [15] * 15 + [40] * 5, dtype=float)
    edges = quantile_edges(values, 10)
    assert list(edges) == [13.0, 14.0, 15.0]
    # arrayCount(e -> e < x, edges): a value equal to an edge falls in the bin the edge closes
    assert list(bin_counts(values, edges)) == [20, 60, 15, 5]


def test_new_category_signal_fires_where_js_barely_moves() -> None:
    ref = {"stop": 4950, "length": 50}
    cur = {"stop": 4900, "length": 50, "tool_calls": 50}  # a never-seen value at 1% share
    tests = evaluate_categorical(CategoricalInput("finish_reason", Direction.OUTPUT, ref, cur), DriftConfig(),
                             np.random.default_rng(0))
    dist, new = tests
    assert dist.effect < 0.01  # JS (bits) of a 1% new category: far below any fixed 0.1 cut-off
    assert new.kind == "new_category" and new.p_value < 1e-10 and new.effect == pytest.approx(0.01)
    assert new.details["category"] == "tool_calls"


def test_stats_reject_bad_input_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="reference has 2 cells but current has 3"):
        stats.psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="non-negative"):
        stats.js_divergence([1, -1], [1, 1])


def test_descriptors() -> None:
    assert d.language("Where is my order? I have been waiting for two weeks and the tracking is stuck.") == "en"
    assert d.language("¿Dónde está mi pedido? El seguimiento no se actualiza desde hace días.") == "es"
    assert d.language("Wo ist meine Bestellung? Ich kann sie nicht finden und die Seite ist leer.") == "de"
    assert d.language("Привет, где мой заказ?") == "cyrillic"
    assert d.language("注文はどこですか") == "ja"
    assert d.language("   ") == d.EMPTY
    assert d.is_refusal("I'm sorry, but I can't help with that.")
    assert d.is_refusal("Lo siento, pero no puedo ayudar con eso.")
    assert not d.is_refusal("Sorry for the delay! Your refund is on its way.")
    assert d.is_valid_json('{"intent": "billing"}') and not d.is_valid_json("intent: billing")
    assert d.has_attachment('[{"role":"tool","content":"42"}]')
    assert d.has_attachment('[{"role":"user","content":[{"type":"image_url","image_url":"x"}]}]')
    assert not d.has_attachment('[{"role":"user","content":"hi"}]')
    assert d.tool_name({"tool": "read_file"}, "") == "read_file"
    assert d.tool_name({}, '[{"role":"assistant","tool_calls":[{"function":{"name":"search"}}]}]') == "search"
    assert d.tool_name({}, "") == d.NONE


def test_text_test_names_what_changed_and_stays_quiet_on_the_same_distribution() -> None:
    rng = np.random.default_rng(0)
    base = [f"How do I reset my password for account {i}? The link in the email expired." for i in range(300)]
    base += [f"My invoice for month {i} shows a charge I do not recognise." for i in range(300)]
    new = [f"Why was my NovaPay transfer {i} declined even though my NovaPay balance is enough?" for i in range(120)]
    order = rng.permutation(600)
    ref = [base[i] for i in order[:300]]
    same = [base[i] for i in order[300:]]
    quiet = text_drift(ref, same, rng)
    assert quiet.p_value > 0.01
    shifted = same[:180] + new
    loud = text_drift(ref, shifted, rng)
    assert loud.p_value < 1e-6 and loud.auc > 0.6
    assert any("novapay" in t.text for t in loud.rising)
    assert any("NovaPay" in e for e in loud.examples)
    assert len(featurize(["a b", ""])) == 2


def test_text_test_over_a_shared_vocabulary_names_the_same_terms() -> None:
    # The analyzer featurizes a pool once (text.compact) and passes local indices with the vocabulary;
    # the rising n-grams must still be named (naming reads hash buckets).
    base = [f"How do I reset my password for account {i}? The link in the email expired." for i in range(200)]
    new = [f"Why was my NovaPay transfer {i} declined even though my NovaPay balance is enough?" for i in range(80)]
    ref, cur = base[:100], base[100:160] + new[:40]
    docs, vocabulary = compact(featurize(ref + cur))
    rows = np.arange(len(ref) + len(cur))
    ref_docs, cur_docs = docs.take(rows[: len(ref)]), docs.take(rows[len(ref) :])
    assert isinstance(ref_docs, HashedDocs)
    pooled = text_drift(ref, cur, np.random.default_rng(1), reference_docs=ref_docs, current_docs=cur_docs,
                        vocabulary=vocabulary)
    plain = text_drift(ref, cur, np.random.default_rng(1))
    assert pooled.p_value == pytest.approx(plain.p_value)
    assert [t.text for t in pooled.rising] == [t.text for t in plain.rising]
    assert any("novapay" in t.text for t in pooled.rising)


def test_batch_featurize_equals_the_per_text_definition() -> None:
    # featurize tokenizes a whole batch at once; each text must get exactly its own n-gram buckets.
    rng = np.random.default_rng(4)
    alphabet = [*"aZ9 _-.,’“”éüß\u00a0\nΣ٣²\x00", "order", "NovaPay", "refund", "123"]
    texts = ["", "  ", "a b", "Where is my order #123-456? It's late.", "“refund” don’t ¿dónde? x²y ١٢٣ abc123def",
             "ſorry İstanbul K ΣΑΣ", "__init__ a_b 3rd", "日本語のテキスト 42", "A" * 2500, "bad \ud800 surrogate"]
    texts += ["".join(rng.choice(alphabet, size=int(rng.integers(0, 60)))) for _ in range(300)]
    docs = featurize(texts)
    assert len(docs) == len(texts)
    for i, text in enumerate(texts):
        got = docs.indices[docs.indptr[i] : docs.indptr[i + 1]].tolist()
        assert sorted(got) == sorted({bucket(g) for g in ngrams(tokens(text))}), text
        assert len(got) == len(set(got))


def test_edges_and_bins_from_value_counts_equal_those_of_the_values() -> None:
    # The analyzer gets (distinct value, count) pairs from ClickHouse; the edges and bins must be those of
    # the expanded values (and of the calibration, which works on raw values).
    rng = np.random.default_rng(5)
    for _ in range(300):
        x = rng.integers(0, int(rng.integers(1, 60)), int(rng.integers(1, 500))).astype(float)
        bins = int(rng.integers(2, 25))
        values, counts = np.unique(x, return_counts=True)
        order = rng.permutation(len(values))
        edges = quantile_edges(x, bins)
        assert np.array_equal(quantile_edges(values[order], bins, counts[order]), edges)
        assert np.array_equal(bin_counts(values[order], edges, counts[order]), bin_counts(x, edges))


def test_refusal_shortcut_for_ascii_text_agrees_with_the_case_insensitive_pattern() -> None:
    assert d.REFUSAL_PATTERN.startswith("(?i)")
    assert d.REFUSAL_PATTERN.lower() == d.REFUSAL_PATTERN  # the shortcut matches lower-cased text
    full = re.compile(d.REFUSAL_PATTERN)
    rng = np.random.default_rng(6)
    phrases = ["I'm sorry, but I can't", "I cannot assist", "I won't comply", "I'm not able to help",
               "As an AI language model, I", "Lo siento, pero no puedo", "Es tut mir leid, aber",
               "Je ne peux pas vous aider", "Mi dispiace, ma non posso", "Sorry for the delay!", "I can help!"]
    for phrase in phrases:
        for _ in range(20):
            text = "x " * int(rng.integers(0, 160)) + phrase
            text = "".join(c.upper() if rng.random() < 0.5 else c for c in text)
            d.is_refusal.cache_clear()
            assert d.is_refusal(text) == (full.search(text[: d.REFUSAL_PREFIX_CHARS]) is not None), text
