"""The character n-gram baseline of benchmarks/ngram.py: interpolated Kneser-Ney
probabilities form a distribution, unseen characters stay possible, and longer histories
pay off on text that repeats itself."""

import math
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from ngram import UNKNOWN, KneserNey, best_order, bits_per_char, fit

TEXT = (
    "the quick brown fox jumps over the lazy dog. "
    "a stitch in time saves nine; the early bird catches the worm. "
    "to be or not to be, that is the question: whether 'tis nobler in the mind. "
) * 4


@pytest.mark.parametrize("modified", [True, False])
@pytest.mark.parametrize("order", [1, 2, 3, 5, 8])
def test_probabilities_sum_to_one(order, modified):
    model = fit(TEXT, order, modified)
    for history in ["", "t", "the ", "to be or n", "xyz", "\u00e9\u00e9 qu", TEXT]:
        dist = model.distribution(history)
        assert set(dist) == {*set(TEXT), UNKNOWN}
        assert all(p > 0 for p in dist.values())
        assert math.fsum(dist.values()) == pytest.approx(1.0, abs=1e-12)


def test_unseen_character_has_finite_positive_probability():
    model = fit(TEXT, 4)
    p = model.prob("Z", "the ")
    assert 0 < p < 1e-2
    assert p == model.distribution("the ")[UNKNOWN]
    assert math.isfinite(bits_per_char(model, "ZZZ \u4e00\u4e01"))


def test_higher_order_beats_lower_on_repetitive_text():
    text = "abcabdabcabe" * 30
    train, val = text[:300], text[300:]
    assert bits_per_char(fit(train, 5), val) < bits_per_char(fit(train, 2), val)
    order, scores = best_order(train, val, orders=range(1, 7))
    assert set(scores) == set(range(1, 7))
    assert scores[order] == min(scores.values())
    assert order > 2


def test_own_text_scores_lower_than_shuffled():
    model = fit(TEXT, 3)
    chars = list(TEXT)
    random.Random(0).shuffle(chars)
    assert bits_per_char(model, TEXT) < bits_per_char(model, "".join(chars))


def test_unigram_bits_per_char_is_at_most_uniform():
    model = KneserNey(1).fit(TEXT)
    uniform = math.log2(len(set(TEXT)) + 1)
    assert 0 < bits_per_char(model, TEXT) < uniform


def test_empty_inputs_are_refused():
    with pytest.raises(ValueError):
        fit("", 3)
    with pytest.raises(ValueError):
        bits_per_char(fit(TEXT, 3), "")
