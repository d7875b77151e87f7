"""The prepare stage for text: split, train a tokeniser on the training split, write token ids.

Labelled texts (classification) are split stratified by label, or by files (data.test_path,
data.val_path); each becomes data.text.context token ids, cut after that many, padding (id
0) after its end. A corpus (language modelling) is split by position, its texts first
shuffled with the split seed, so that no stretch of text is in two splits; each split
becomes windows of data.text.context tokens, the targets the same tokens one step on.
Windows overlap by half: training's, to show more beginnings; validation's and test's, so
that each token is scored once, with at least half a context of text before it. Tagged
sentences (token classification) are split at random by the split seed, or by files;
each becomes data.text.context token ids, with its words' tags as targets (see
dlpipe.data.tagged).

Layout written to the output directory:
    train.npz, val.npz, test.npz   `x` int64 token ids (n, context); `y` int64 labels (n,),
                                   next tokens or tags (n, context)
    tokeniser.json                 the tokeniser, trained on the training split only
    meta.json                      as for other data, and `text`: the tokeniser's kind, file,
                                   vocabulary size, context and each token's characters
"""

import hashlib
import random
import shutil
from functools import partial

import numpy as np
from sklearn.model_selection import train_test_split

from dlpipe import files
from dlpipe.data import tagged, tokenise
from dlpipe.data.raw import Target, class_outputs, stacked
from dlpipe.data.shards import FOLDER
from dlpipe.data.sources import call_source
from dlpipe.data.splitting import SPLITS
from dlpipe.data.text import Texts
from dlpipe.errors import ConfigError, DataError

TOKENISER_FILE = "tokeniser.json"


def read_texts(settings: dict, path: str | None = None) -> Texts | tagged.Tagged:
    """The texts (or tagged sentences) of the data set (of the file at `path`, read as
    data.path is)."""
    if path is not None:
        settings = {**settings, "path": path}
    returned = call_source(settings)
    if not isinstance(returned, Texts | tagged.Tagged):
        raise ConfigError(
            f"data.text is set, but data '{settings['name']}' returned "
            f"{type(returned).__name__}, not texts: leave data.text unset for it, or give a "
            "text source (dlpipe.data.text, dlpipe.data.tagged)"
        )
    return returned


def prepare_text(settings: dict, out_dir, source: dict) -> dict:
    """Prepare the texts of `settings` into `out_dir`; return meta.json's content."""
    texts, text = read_texts(settings), settings["text"]
    if isinstance(texts, tagged.Tagged):
        arrays, targets, how, training, tokeniser = tagged.tokenised(
            texts, settings, partial(read_texts, settings)
        )
    else:
        arrays, targets, how, training, tokeniser = _tokenised(texts, settings)
    context = text["context"]
    vocab = tokeniser.get_vocab_size()
    targets = targets or {"num_outputs": vocab, "classes": None, "heads": None}
    record = {
        "tokeniser": text["tokeniser"],
        "file": TOKENISER_FILE,
        "vocab_size": vocab,
        "context": context,
        "token_chars": tokenise.token_chars(tokeniser, training),
    }
    meta = {
        "name": settings["name"],
        "data": settings,
        "source": source,
        "task": texts.task,
        "input_shape": [context],
        **targets,
        "pixel_range": None,
        "padded": False,
        "sizes": {name: len(arrays[name][1]) for name in SPLITS},
        "split": {**how, "seed": settings["split"]["seed"]},
        "stats": {},
        "text": record,
        "hash": _content_hash(arrays, tokeniser.to_str()),
    }
    _write(out_dir, arrays, tokeniser, meta)
    return meta


def _tokenised(texts: Texts, settings: dict) -> tuple:
    """Labelled texts or a corpus as (token ids, targets) arrays per split, what the
    targets are (None: next tokens), where the splits came from, the training texts and
    the tokeniser trained on them."""
    text, labelled = settings["text"], texts.labels is not None
    parts, targets, how = (labelled_splits if labelled else _corpus_splits)(texts, settings)
    training = parts["train"][0] if labelled else [parts["train"]]
    tokeniser = tokenise.train(training, text["tokeniser"], text["vocab_size"], text["lowercase"])
    context = text["context"]
    if labelled:
        arrays = {
            name: (tokenise.padded(tokenise.encode(tokeniser, part[0]), context), part[1])
            for name, part in parts.items()
        }
    else:
        arrays = {
            name: _windows(tokenise.encode(tokeniser, [part])[0], context, name)
            for name, part in parts.items()
        }
    return arrays, targets, how, training, tokeniser


def _write(out_dir, arrays: dict, tokeniser, meta: dict) -> None:
    files.clear_partial(out_dir)
    # Data prepared in shards before: DVC would keep them beside the arrays.
    shutil.rmtree(out_dir / FOLDER, ignore_errors=True)
    for name in SPLITS:
        x, y = arrays[name]
        with files.atomic_path(out_dir / f"{name}.npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, x=x, y=y)
    tokenise.save(tokeniser, out_dir / TOKENISER_FILE)
    files.write_json(out_dir / "meta.json", meta)


def labelled_splits(texts: Texts, settings: dict) -> tuple[dict, dict, dict]:
    """Each split's (texts, labels), what the labels are (meta.json's num_outputs, classes
    and heads), and where the splits came from: files where data.test_path or
    data.val_path name them, else fractions stratified by the (first) label.

    One label: int64 class indices. Several: float32 (n, labels), a class index each."""
    cut = settings["split"]
    given = {name: settings.get(f"{name}_path") for name in ("test", "val")}
    pool = list(range(len(texts.texts)))
    columns = {name: np.asarray(labels) for name, labels in texts.label_columns.items()}
    strata = next(iter(columns.values()))
    parts, how = {}, {"mode": "files" if any(given.values()) else "fractions"}
    for name in ("test", "val"):
        if given[name] is not None:
            other = read_texts(settings, given[name])
            parts[name], how[name] = (other.texts, other.label_columns), given[name]
            continue
        # Fractions of the whole set, as for other data: validation's, of what test left.
        carved_test = name == "val" and given["test"] is None
        fraction = cut["val"] / (1 - cut["test"]) if carved_test else cut[name]
        pool, chosen = _stratified(pool, strata, fraction, cut["seed"], name)
        parts[name] = _chosen(texts.texts, columns, chosen)
        how[name] = cut[name]
    parts["train"] = _chosen(texts.texts, columns, pool)
    classes = {label: sorted(set(values)) for label, values in parts["train"][1].items()}
    indexed = {name: (part[0], _targets(part[1], classes, name)) for name, part in parts.items()}
    if len(classes) == 1:
        (only,) = classes.values()
        targets = {"num_outputs": class_outputs(only), "classes": only, "heads": None}
        return {name: (x, y[:, 0]) for name, (x, y) in indexed.items()}, targets, how
    as_heads = {name: _as_heads(y, classes) for name, (_, y) in indexed.items()}
    heads = as_heads["train"][1]
    targets = {"num_outputs": sum(head["outputs"] for head in heads), "classes": None}
    split = {name: (part[0], as_heads[name][0]) for name, part in indexed.items()}
    return split, {**targets, "heads": heads}, how


def _as_heads(y: np.ndarray, classes: dict[str, list[str]]) -> tuple[np.ndarray, list[dict]]:
    """Several labels' class indices as multi-task targets, and a head for each."""
    found = [Target(label, y[:, i], names) for i, (label, names) in enumerate(classes.items())]
    return stacked(found, len(y))


def _chosen(texts: list[str], columns: dict[str, np.ndarray], rows) -> tuple[list, dict]:
    """The texts at `rows`, and their labels of each kind."""
    labels = {name: values[rows].tolist() for name, values in columns.items()}
    return [texts[i] for i in rows], labels


def _targets(columns: dict, classes: dict[str, list[str]], name: str) -> np.ndarray:
    """Each kind of label's class indices, side by side: int64 (n, kinds)."""
    found = [_indices(columns[label], names, name, label) for label, names in classes.items()]
    return np.stack(found, axis=1)


def _stratified(pool: list[int], labels: np.ndarray, fraction: float, seed: int, name: str):
    """`pool` less a `fraction` of it drawn stratified by label, and that fraction."""
    try:
        kept, chosen = train_test_split(
            pool, test_size=fraction, stratify=labels[pool], random_state=seed
        )
    except ValueError as exc:  # a split too small to hold every class once
        raise ConfigError(
            f"data.split.{name}={fraction} cannot split {len(pool)} texts of "
            f"{len(set(labels[pool]))} classes: raise it ({exc})"
        ) from exc
    return kept, chosen


def _indices(labels: list[str], classes: list[str], name: str, column: str | None) -> np.ndarray:
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        of = f" in column '{column}'" if column else ""
        raise DataError(
            f"the {name} texts hold label '{unknown[0]}'{of}, which no training text has "
            f"({', '.join(classes)}): a model cannot learn it; drop those rows or add "
            "training texts of it"
        )
    return np.array([classes.index(label) for label in labels], dtype=np.int64)


def _corpus_splits(texts: Texts, settings: dict) -> tuple[dict, None, dict]:
    """The corpus as one text per split, cut by position from its texts in a seeded order."""
    cut = settings["split"]
    for key in ("test_path", "val_path"):
        if settings.get(key) is not None:
            raise ConfigError(
                f"data.{key} is set, but a corpus is split by position: leave data.{key} "
                "unset and set data.split.val and data.split.test"
            )
    return (
        corpus_splits(texts.texts, cut["val"], cut["test"], cut["seed"]),
        None,
        {
            "mode": "fractions",
            "val": cut["val"],
            "test": cut["test"],
        },
    )


def corpus_splits(texts: list[str], val: float, test: float, seed: int) -> dict[str, str]:
    """The texts, shuffled by `seed` and joined by blank lines, cut into training,
    validation and test text by the fractions `val` and `test` of their characters."""
    order = list(texts)
    random.Random(seed).shuffle(order)
    corpus = "\n\n".join(order)
    val_start = round(len(corpus) * (1 - val - test))
    test_start = round(len(corpus) * (1 - test))
    return {
        "train": corpus[:val_start],
        "val": corpus[val_start:test_start],
        "test": corpus[test_start:],
    }


def _windows(ids: list[int], context: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, context) and targets, the tokens one step on, windows starting every
    context // 2 tokens. Training scores every target; validation and test score each
    token once, a window after the first only its last context // 2 targets, so every
    token scored has at least half a context before it (UNSCORED the others)."""
    tokens = np.asarray(ids, dtype=np.int64)
    if len(tokens) < context + 1:
        more = f"raise data.split.{name}" if name != "train" else "lower data.split.val and test"
        raise ConfigError(
            f"data.text.context={context} exceeds the {name} split's {len(tokens)} tokens: "
            f"lower data.text.context or {more}"
        )
    stride = max(1, context // 2)
    starts = np.arange(0, len(tokens) - context, stride)
    index = starts[:, None] + np.arange(context)[None]
    targets = tokens[index + 1]
    if name != "train":
        targets[1:, : context - stride] = tokenise.UNSCORED  # the window before scored them
    return tokens[index], targets


def _content_hash(arrays: dict, tokeniser: str) -> str:
    digest = hashlib.sha256(tokeniser.encode())
    for name in SPLITS:
        for array in arrays[name]:
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()
