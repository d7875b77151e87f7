"""Token classification data: sentences whose every word has a tag (a named entity's
B-PER, I-PER, O; a part of speech), read from a CoNLL-style file, and their preparation.

A CoNLL-style file holds one word a line, its columns split by white space: the word
first, its tag in data.tag_column (the last by default); a blank line ends a sentence and
`-DOCSTART-` lines are skipped. At prepare, the tokeniser (trained on the training
sentences) splits each word into pieces: a word's tag is the target of its first piece;
the other pieces' and padding's targets are UNSCORED, which the loss and the metrics
leave out. A sentence is cut after data.text.context pieces, as a classified text is: the
words past it are neither trained on nor scored.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlpipe.data import tokenise
from dlpipe.errors import ConfigError, DataError

TASK = "token_classification"
_DOCUMENT_START = "-DOCSTART-"


@dataclass(frozen=True)
class Tagged:
    """Sentences as their words, each word's tag, and how messages name the data."""

    sentences: list[list[str]]
    tags: list[list[str]]
    where: str

    @property
    def task(self) -> str:
        return TASK


def conll(path: str, tag_column: int = -1) -> Tagged:
    """The sentences of a CoNLL-style file: the word in each line's first column, its tag
    in column `tag_column` (counted from 0; negative: from the end)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data file {path} does not exist: set data.path to a CoNLL-style file")
    sentences, tags, words, marks = [], [], [], []
    for number, line in enumerate(_lines(file), 1):
        columns = line.split()
        if not columns or columns[0] == _DOCUMENT_START:
            if words:
                sentences.append(words)
                tags.append(marks)
            words, marks = [], []
            continue
        if len(columns) < 2 or not -len(columns) <= tag_column < len(columns):
            raise DataError(
                f"data file {path}: line {number} holds {len(columns)} column(s), with no tag "
                f"in column {tag_column}: give each word a line of the word and its tag, "
                "or set data.tag_column"
            )
        words.append(columns[0])
        marks.append(columns[tag_column])
    if words:
        sentences.append(words)
        tags.append(marks)
    if not sentences:
        raise DataError(f"data file {path} holds no tagged words: give a word and its tag a line")
    return Tagged(sentences, tags, f"data file {path}")


def _lines(file: Path) -> list[str]:
    try:
        return file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(
            f"data file {file} is not UTF-8 text ({exc.reason} at byte {exc.start}): save it "
            "as UTF-8"
        ) from exc


def tokenised(tagged: Tagged, settings: dict, read: Callable[[str], Tagged]) -> tuple:
    """The splits as (token ids, targets) arrays, what the targets are (meta.json's
    num_outputs, classes and heads), where the splits came from, the training texts and
    the tokeniser trained on them. `read(path)`: the sentences of data.test_path or
    data.val_path."""
    parts, how = _splits(tagged, settings, read)
    text = settings["text"]
    training = [" ".join(words) for words in parts["train"][0]]
    tokeniser = tokenise.train(training, text["tokeniser"], text["vocab_size"], text["lowercase"])
    classes = sorted({tag for marks in parts["train"][1] for tag in marks})
    if len(classes) < 2:
        raise DataError(
            f"{tagged.where}: its training words hold {len(classes)} tag ({', '.join(classes)}): "
            "a model needs two or more to tell apart"
        )
    arrays = {
        name: _arrays(tokeniser, words, _indices(marks, classes, name), text["context"])
        for name, (words, marks) in parts.items()
    }
    targets = {"num_outputs": len(classes), "classes": classes, "heads": None}
    return arrays, targets, how, training, tokeniser


def _splits(tagged: Tagged, settings: dict, read: Callable[[str], Tagged]) -> tuple[dict, dict]:
    """Each split's (sentences, tags): a file's where data.test_path or data.val_path name
    one, else a seeded draw of the fraction data.split.<name> of the sentences."""
    cut = settings["split"]
    given = {name: settings.get(f"{name}_path") for name in ("test", "val")}
    left = np.random.default_rng(cut["seed"]).permutation(len(tagged.sentences))
    parts, how = {}, {"mode": "files" if any(given.values()) else "fractions"}
    for name in ("test", "val"):
        if given[name] is not None:
            other = read(given[name])
            parts[name], how[name] = (other.sentences, other.tags), given[name]
            continue
        count = round(len(tagged.sentences) * cut[name])
        if not 0 < count < len(left):
            raise ConfigError(
                f"data.split.{name}={cut[name]} gives {count} of the {len(left)} sentences "
                f"left to the {name} split: set it so that both it and training hold some"
            )
        parts[name], how[name], left = _picked(tagged, left[:count]), cut[name], left[count:]
    parts["train"] = _picked(tagged, left)
    return parts, how


def _picked(tagged: Tagged, rows) -> tuple[list, list]:
    return [tagged.sentences[i] for i in rows], [tagged.tags[i] for i in rows]


def _indices(tags: list[list[str]], classes: list[str], name: str) -> list[list[int]]:
    """Each word's tag as its index in `classes`, or a DataError naming a tag they lack."""
    known = {tag: index for index, tag in enumerate(classes)}
    for marks in tags:
        unknown = next((tag for tag in marks if tag not in known), None)
        if unknown is not None:
            raise DataError(
                f"the {name} sentences hold tag '{unknown}', which no training word has "
                f"({', '.join(classes)}): a model cannot learn it; drop those sentences or "
                "add training sentences of it"
            )
    return [[known[tag] for tag in marks] for marks in tags]


def _arrays(tokeniser, sentences, tags, context: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (n, context) and targets (n, context): each word's tag at its first
    piece, UNSCORED elsewhere."""
    ids, firsts = first_pieces(tokeniser, sentences, context)
    targets = np.full(ids.shape, tokenise.UNSCORED, dtype=np.int64)
    for row, (found, marks) in enumerate(zip(firsts, tags, strict=True)):
        for word, place in found.items():
            targets[row, place] = marks[word]
    return ids, targets


def first_pieces(tokeniser, sentences: list[list[str]], context: int) -> tuple[np.ndarray, list]:
    """Each sentence's token ids (n, context; padding after its end) and, by word (its
    index in the sentence), where its first piece is, for each word whose first piece
    fits in the context."""
    encodings = tokeniser.encode_batch(sentences, is_pretokenized=True)
    ids = tokenise.padded([encoding.ids for encoding in encodings], context)
    firsts = []
    for encoding in encodings:
        found: dict[int, int] = {}
        for place, word in enumerate(encoding.word_ids[:context]):
            if word is not None:
                found.setdefault(word, place)
        firsts.append(found)
    return ids, firsts
