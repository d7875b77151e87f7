"""A character n-gram language model baseline: interpolated Kneser-Ney smoothing.

    python benchmarks/ngram.py     # demo on the topics of Python's own documentation

The model is the recursive interpolated Kneser-Ney of Chen & Goodman (1998), by default
in its modified form (three discounts D1, D2, D3+ per order):

    P_k(c | h) = (max(n(hc) - D(n(hc)), 0) + gamma(h) * P_{k-1}(c | h')) / n(h.)
    gamma(h)   = D1 * N1(h.) + D2 * N2(h.) + D3 * N3+(h.)

where h' is h without its first character. At the highest order n() is the raw count of
the n-gram; at every lower order it is the continuation count, the number of distinct
characters seen just before the n-gram. Below the unigram level the base is uniform over
the vocabulary: the characters of the training text plus one unknown symbol, so that a
character never seen in training has a finite probability (all such characters share the
unknown symbol's probability). A context never seen at some order adds nothing there and
its probability is the one of the order below. The discounts of each order come from the
count-of-counts n1..n4 of the counts that order uses: Y = n1 / (n1 + 2 n2), D1 = 1 - 2Y
n2/n1, D2 = 2 - 3Y n3/n2, D3 = 3 - 4Y n4/n3 (or the single D = Y when not modified, and
also when some n1..n4 is zero or a Di falls outside (0, i); Y = 0.5 when n1 or n2 is 0).

Start of text: every text, the training text and each scored text alike, is padded on
its left with a start symbol (a character that does not occur in the training text), so
the first characters are predicted from a full-length history made of start symbols and
the characters before them. The start symbol is never predicted. A scored text's history
runs within that text only.

The counts of every order are shared between models of different orders fitted on the
same text (`best_order` counts once for all orders).
"""

import math
import time
from collections import Counter
from collections.abc import Iterable

UNKNOWN = "<unk>"  # the key of the unknown symbol in `KneserNey.distribution`


def _start_symbol(text: str) -> str:
    """A private-use character that does not occur in `text`."""
    present = set(text)
    for code in range(0xE000, 0xF900):
        if chr(code) not in present:
            return chr(code)
    raise ValueError("no free private-use character for the start symbol")


def _discounts(counts: Iterable[int], modified: bool) -> tuple[float, float, float]:
    """(D1, D2, D3+) from the count-of-counts of `counts` (all three equal if not modified)."""
    n = Counter(c for c in counts if c <= 4)
    n1, n2, n3, n4 = n[1], n[2], n[3], n[4]
    y = n1 / (n1 + 2 * n2) if n1 and n2 else 0.5
    y = min(max(y, 0.05), 1.0)
    if not modified or not (n1 and n2 and n3 and n4):
        return (y, y, y)  # too few counts for the three discounts: the single one
    ds = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    if not all(0 < d < i for i, d in enumerate(ds, start=1)):
        return (y, y, y)
    return ds


class _Level:
    """One order: n-gram counts, per-context (total, gamma numerator), and discounts."""

    __slots__ = ("contexts", "counts", "discounts")

    def __init__(self, counts: dict[str, int], modified: bool):
        self.counts = counts
        self.discounts = _discounts(counts.values(), modified)
        d1, d2, d3 = self.discounts
        totals: dict[str, list] = {}
        for gram, c in counts.items():
            stats = totals.get(gram[:-1])
            if stats is None:
                stats = totals[gram[:-1]] = [0, 0.0]
            stats[0] += c
            stats[1] += d1 if c == 1 else d2 if c == 2 else d3
        self.contexts = {h: (t, g) for h, (t, g) in totals.items()}


class _Counts:
    """The raw and continuation counts of one training text, built per order on demand."""

    def __init__(self, text: str, modified: bool = True):
        if not text:
            raise ValueError("cannot fit on an empty text")
        self.text = text
        self.modified = modified
        self.bos = _start_symbol(text)
        self.vocab = sorted(set(text))
        self._raw: dict[int, dict[str, int]] = {}
        self._raw_levels: dict[int, _Level] = {}
        self._cont_levels: dict[int, _Level] = {}

    def raw(self, k: int) -> dict[str, int]:
        """Counts of the k-grams ending at each character of the (padded) text."""
        if k not in self._raw:
            padded = self.bos * (k - 1) + self.text
            self._raw[k] = dict(Counter(padded[i : i + k] for i in range(len(self.text))))
        return self._raw[k]

    def raw_level(self, k: int) -> _Level:
        if k not in self._raw_levels:
            self._raw_levels[k] = _Level(self.raw(k), self.modified)
        return self._raw_levels[k]

    def cont_level(self, k: int) -> _Level:
        """k-grams with their continuation counts: distinct characters seen before them."""
        if k not in self._cont_levels:
            counts = dict(Counter(gram[1:] for gram in self.raw(k + 1)))
            self._cont_levels[k] = _Level(counts, self.modified)
        return self._cont_levels[k]


class KneserNey:
    """Interpolated (modified by default) Kneser-Ney character n-gram model of `order`:
    each character is predicted from the order - 1 characters before it."""

    def __init__(self, order: int, modified: bool = True):
        if order < 1:
            raise ValueError(f"order must be at least 1, not {order}")
        self.order = order
        self.modified = modified
        self.levels: list[_Level] = []

    def fit(self, text: str) -> "KneserNey":
        return self._from_counts(_Counts(text, self.modified))

    def _from_counts(self, counts: _Counts) -> "KneserNey":
        self.bos = counts.bos
        self.vocab = counts.vocab
        self._in_vocab = frozenset(counts.vocab)
        self._uniform = 1.0 / (len(counts.vocab) + 1)
        n = self.order
        self.levels = [counts.cont_level(k) for k in range(1, n)] + [counts.raw_level(n)]
        return self

    @property
    def discounts(self) -> list[tuple[float, float, float]]:
        """(D1, D2, D3+) of each order, unigram first."""
        return [level.discounts for level in self.levels]

    def _history(self, history: str) -> str:
        """The last order - 1 characters of `history`, padded with start symbols."""
        n = self.order - 1
        if n == 0:
            return ""
        return (self.bos * n + history)[-n:]

    def _prob(self, hist: str, char: str) -> float:
        """P(char | hist) for a history of exactly order - 1 characters."""
        p = self._uniform
        for k, level in enumerate(self.levels):
            h = hist[len(hist) - k :] if k else ""
            stats = level.contexts.get(h)
            if stats is None:
                continue
            c = level.counts.get(h + char, 0)
            if c:
                d1, d2, d3 = level.discounts
                c -= d1 if c == 1 else d2 if c == 2 else d3
            p = (c + stats[1] * p) / stats[0]
        return p

    def prob(self, char: str, history: str = "") -> float:
        """P(char | the last order - 1 characters of `history`); a character outside the
        vocabulary gets the unknown symbol's probability."""
        if len(char) != 1:
            raise ValueError(f"expected a single character, not {char!r}")
        if char not in self._in_vocab:
            char = UNKNOWN  # matches no n-gram: only the uniform base is left
        return self._prob(self._history(history), char)

    def distribution(self, history: str = "") -> dict[str, float]:
        """The probability of every vocabulary character and of UNKNOWN after `history`;
        the values sum to 1."""
        hist = self._history(history)
        dist = {c: self._prob(hist, c) for c in self.vocab}
        dist[UNKNOWN] = self._prob(hist, UNKNOWN)
        return dist


def fit(text: str, order: int, modified: bool = True) -> KneserNey:
    """A Kneser-Ney model of `order` fitted on `text`."""
    return KneserNey(order, modified).fit(text)


def bits_per_char(model: KneserNey, text: str) -> float:
    """The mean of -log2 P(c_i | the order - 1 characters before it) over `text`, the
    history running within `text` only (padded with start symbols at its start)."""
    if not text:
        raise ValueError("cannot score an empty text")
    n = model.order - 1
    padded = model.bos * n + text
    vocab = model._in_vocab
    prob = model._prob
    log2 = math.log2
    total = 0.0
    for i, c in enumerate(text):
        total -= log2(prob(padded[i : i + n], c if c in vocab else UNKNOWN))
    return total / len(text)


def best_order(
    train: str, val: str, orders: Iterable[int] = range(2, 9), modified: bool = True
) -> tuple[int, dict[int, float]]:
    """Fits a model of each order on `train`; the order with the lowest bits per character
    on `val` and each order's validation bits per character."""
    counts = _Counts(train, modified)
    scores = {k: bits_per_char(KneserNey(k, modified)._from_counts(counts), val) for k in orders}
    if not scores:
        raise ValueError("no orders to try")
    return min(scores, key=scores.__getitem__), scores


def _docs_corpus() -> str:
    import pydoc_data.topics

    topics = pydoc_data.topics.topics
    return "\n\n".join(topics[k] for k in sorted(topics))


def main() -> None:
    text = _docs_corpus()
    a, b = int(len(text) * 0.90), int(len(text) * 0.95)
    train, val, test = text[:a], text[a:b], text[b:]
    print(f"pydoc topics: {len(text)} chars; train {len(train)}, val {len(val)}, test {len(test)}")
    start = time.perf_counter()
    order, scores = best_order(train, val)
    elapsed = time.perf_counter() - start
    for k, bpc in scores.items():
        print(f"  order {k}: val {bpc:.4f} bits/char")
    print(f"all orders fitted and scored in {elapsed:.1f} s; best order {order}")
    start = time.perf_counter()
    model = fit(train, order)
    fitted = time.perf_counter() - start
    start = time.perf_counter()
    bpc = bits_per_char(model, test)
    scored = time.perf_counter() - start
    print(f"order {order}: test {bpc:.4f} bits/char (fit {fitted:.1f} s, score {scored:.2f} s)")


if __name__ == "__main__":
    main()
