"""Tokenisers: Hugging Face `tokenizers` models trained on the training split's texts.

Three kinds (data.text.tokeniser):
    bpe        byte-level byte-pair encoding (GPT-2's): any text encodes, and decodes back
               exactly; its 256 byte tokens come before the merges learnt.
    wordpiece  BERT's: words split on white space and punctuation into known pieces;
               decoding joins the pieces with single spaces.
    char       one token per character seen in training (the most frequent, up to the
               vocabulary size); decodes back exactly.

Id 0 is padding and id 1 stands for what the vocabulary lacks. A tokeniser is saved as
one JSON file (its own format), with the prepared data and inside a served model.
"""

import json
from collections.abc import Iterable
from pathlib import Path
from typing import get_args

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from dlpipe import files
from dlpipe.config.schema.data import Tokeniser
from dlpipe.errors import ConfigError, DataError

KINDS = get_args(Tokeniser)
PAD, UNKNOWN = "[PAD]", "[UNK]"
SPECIAL = [PAD, UNKNOWN]
# A language model's target that is not scored (torch's cross-entropy ignores it): a
# token an earlier, overlapping window scored already.
UNSCORED = -100
# What starts a word piece that continues a word (WordPiece's).
CONTINUES = "##"
# Byte-level BPE starts from every byte, and the special tokens.
BPE_BASE = 256 + len(SPECIAL)


def train(texts: Iterable[str], kind: str, vocab_size: int, lowercase: bool) -> Tokenizer:
    """A tokeniser of `kind` with at most `vocab_size` tokens, learnt from `texts`."""
    if kind == "bpe" and vocab_size < BPE_BASE:
        raise ConfigError(
            f"data.text.vocab_size={vocab_size} is below byte-level BPE's {BPE_BASE} base "
            f"tokens (256 bytes, {PAD}, {UNKNOWN}): raise it, or use data.text.tokeniser=char"
        )
    tokeniser, trainer = _untrained(kind, vocab_size)
    if lowercase:
        tokeniser.normalizer = normalizers.Lowercase()
    if kind != "wordpiece":
        tokeniser.train_from_iterator(texts, trainer)
        return _literal(tokeniser)
    texts = list(texts)
    pieces = _continuations(tokeniser, texts)
    # The trainer makes a piece such as "##e" on first meeting it, in hash order, and breaks
    # ties between equally frequent merges by the pieces' ids: the same texts would train
    # another vocabulary each time (tokenizers' issue 1794). Given first, as special tokens
    # (whose ids come first, in this order), each has the same id every time; then they
    # are made plain pieces of the vocabulary again.
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=[*SPECIAL, *pieces], show_progress=False
    )
    tokeniser.train_from_iterator(texts, trainer)
    return _literal(_unmarked(tokeniser, set(pieces)))


def _continuations(tokeniser: Tokenizer, texts: list[str]) -> list[str]:
    """Every piece "##<c>" the WordPiece trainer will start from, in order: each character
    that follows another within a word, as the tokeniser normalises and splits texts."""
    found = set()
    for text in texts:
        normal = tokeniser.normalizer.normalize_str(text) if tokeniser.normalizer else text
        for word, _ in tokeniser.pre_tokenizer.pre_tokenize_str(normal):
            found.update(word[1:])
    return [f"{CONTINUES}{char}" for char in sorted(found)]


def _unmarked(tokeniser: Tokenizer, tokens: set[str]) -> Tokenizer:
    """`tokeniser` with `tokens`, special in training, plain tokens of its vocabulary."""
    state = json.loads(tokeniser.to_str())
    state["added_tokens"] = [
        token for token in state["added_tokens"] if token["content"] not in tokens
    ]
    return Tokenizer.from_str(json.dumps(state))


def _literal(tokeniser: Tokenizer) -> Tokenizer:
    """`tokeniser`, reading "[PAD]" or "[UNK]" written in a text as the characters they are:
    padding and unknown come from the tokeniser only."""
    tokeniser.encode_special_tokens = True
    return tokeniser


def _untrained(kind: str, vocab_size: int) -> tuple[Tokenizer, trainers.Trainer | None]:
    if kind == "bpe":
        tokeniser = Tokenizer(models.BPE(unk_token=UNKNOWN))
        tokeniser.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokeniser.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        return tokeniser, trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=SPECIAL,
            initial_alphabet=alphabet,
            show_progress=False,
        )
    if kind == "wordpiece":  # its trainer is made by `train`, which needs the texts
        tokeniser = Tokenizer(models.WordPiece(unk_token=UNKNOWN))
        tokeniser.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokeniser.decoder = decoders.WordPiece()
        return tokeniser, None
    if kind == "char":
        tokeniser = Tokenizer(models.WordLevel(unk_token=UNKNOWN))
        # Every character its own token, line breaks included.
        tokeniser.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tokeniser.decoder = decoders.Fuse()
        return tokeniser, trainers.WordLevelTrainer(
            vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False
        )
    raise ConfigError(f"data.text.tokeniser must be one of {', '.join(KINDS)}, got {kind!r}")


def encode(tokeniser: Tokenizer, texts: list[str]) -> list[list[int]]:
    """Each text's token ids."""
    return [encoding.ids for encoding in tokeniser.encode_batch(texts)]


def padded(ids: list[list[int]], length: int) -> np.ndarray:
    """Token ids (n, length): each text's first `length` tokens, padding (0) after its end."""
    array = np.zeros((len(ids), length), dtype=np.int64)
    for row, tokens in enumerate(ids):
        kept = tokens[:length]
        array[row, : len(kept)] = kept
    return array


def decode(tokeniser: Tokenizer, ids: Iterable[int]) -> str:
    """The text of token ids; padding and unknown ids make none."""
    return tokeniser.decode(list(ids))


def token_chars(tokeniser: Tokenizer, texts: list[str]) -> list[float]:
    """How many characters of text each id stands for, on average over `texts` (the
    training split): a token covers the text from the end of the token before it to its
    own end, so white space a tokeniser drops (a word piece's) counts with the token after
    it, and a character the vocabulary lacks with [UNK]. Summed over a text's tokens, as
    bits per character need, they give its length; an id the texts never use counts 1."""
    size = tokeniser.get_vocab_size()
    totals, counts = np.zeros(size), np.zeros(size)
    for encoding in tokeniser.encode_batch(texts):
        ends = np.array([end for _, end in encoding.offsets], dtype=np.float64)
        np.add.at(totals, encoding.ids, np.diff(ends, prepend=0.0))
        np.add.at(counts, encoding.ids, 1)
    return np.where(counts > 0, totals / np.maximum(counts, 1), 1.0).tolist()


def save(tokeniser: Tokenizer, path: Path) -> None:
    """Write the tokeniser as its JSON, atomically."""
    files.write_text(path, tokeniser.to_str())


def load(path: Path) -> Tokenizer:
    """The tokeniser saved at `path`, or a DataError naming it."""
    try:
        return _literal(Tokenizer.from_file(str(path)))
    except Exception as exc:  # tokenizers raises its own Exception type for any bad file
        raise DataError(
            f"tokeniser file {path} cannot be read ({str(exc).splitlines()[0]}): rerun the "
            "prepare stage"
        ) from exc


def from_json(saved: str) -> Tokenizer:
    """A tokeniser from its JSON text, as a served model's settings hold it."""
    return _literal(Tokenizer.from_str(saved))
