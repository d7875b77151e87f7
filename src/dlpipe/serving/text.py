"""Text in, for a model trained on text: classes with probabilities out of a classifier,
a tag per word out of a tagger, text out of a language model.

The tokeniser travels in the model's settings (its JSON), so a served model takes raw text
and needs no prepared data. A classifier reads each text's first `context` tokens, as in
training; a tagger tags the words (split at white space) whose first piece fits in its
context; a language model continues each prompt, which must fit its context.
"""

import math
from functools import cache
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch

from dlpipe.data import tokenise
from dlpipe.data.tagged import first_pieces
from dlpipe.errors import DataError
from dlpipe.models.sampling import generate

# The column texts (and prompts) are read from when the training table named none.
COLUMN = "text"
# Generation's settings when a call gives none (a served model's params).
DEFAULTS = {"tokens": 200, "temperature": 1.0, "top_k": 0, "seed": 0}
# The most tokens one call writes.
MOST_TOKENS = 100_000
# Tokens of a language model's input example.
EXAMPLE_PROMPT = 16
# Texts a tagger scores at once.
TAGGED_BATCH = 256


def settings_of(meta: dict, folder) -> dict:
    """What a served model needs of text data's meta.json: how to tokenise (the tokeniser
    itself, read from the prepared `folder`), its context, and the column texts are in."""
    record = {key: value for key, value in meta["text"].items() if key != "token_chars"}
    saved = tokenise.load(folder / record["file"]).to_str()
    return {**record, "saved": saved, "column": meta["data"].get("text_column") or COLUMN}


@cache
def _tokeniser(saved: str):
    return tokenise.from_json(saved)


def texts_of(raw, column: str) -> list[str]:
    """The texts of `raw`: a table's `column` (or its only column), or an array of them;
    a DataError naming the first row without text."""
    if isinstance(raw, pd.DataFrame):
        if column not in raw.columns and len(raw.columns) != 1:
            raise DataError(
                f"has no column '{column}' of texts (it has {', '.join(map(str, raw.columns))})"
            )
        raw = raw[column] if column in raw.columns else raw.iloc[:, 0]
    values = np.asarray(raw, dtype=object).ravel()
    texts = ["" if pd.isna(value) else str(value) for value in values]
    if not texts:
        raise DataError("holds no texts: give a row per text")
    for row, text in enumerate(texts, 1):
        if not text.strip():
            raise DataError(f"row {row} holds no text: give each row a text")
    return texts


def token_ids(settings: dict, raw) -> torch.Tensor:
    """A classifier's input: each text's first `context` token ids, padding after."""
    texts = texts_of(raw, settings["text"]["column"])
    text = settings["text"]
    ids = tokenise.encode(_tokeniser(text["saved"]), texts)
    return torch.from_numpy(tokenise.padded(ids, text["context"]))


def tagged(network: torch.nn.Module, settings: dict, raw) -> pd.DataFrame:
    """Each text's words (split at white space) and each word's tag, its first piece's
    likeliest, side by side as space-separated `words` and `tags`: words past the
    context's pieces are left out of both."""
    text = settings["text"]
    sentences = [each.split() for each in texts_of(raw, text["column"])]
    ids, firsts = first_pieces(_tokeniser(text["saved"]), sentences, text["context"])
    x = torch.from_numpy(ids)
    # A batch at a time: a table of many texts need not fit in memory at once as scores.
    batches = range(0, len(x), TAGGED_BATCH)
    predicted = torch.cat([network(x[i : i + TAGGED_BATCH]).argmax(-1) for i in batches])
    classes, words, tags = settings["classes"], [], []
    for row, found in enumerate(firsts):
        words.append(" ".join(sentences[row][word] for word in found))
        tags.append(" ".join(classes[predicted[row, place]] for place in found.values()))
    return pd.DataFrame({"words": words, "tags": tags})


def as_texts(settings: dict, x: torch.Tensor) -> pd.DataFrame:
    """Token ids back as a table of texts: the model's input example (a language model's:
    the first tokens only, prompts to continue)."""
    text = settings["text"]
    tokeniser = _tokeniser(text["saved"])
    texts = [tokenise.decode(tokeniser, row.tolist()) for row in x]
    if settings["task"] == "language_model":  # prompts with something to continue
        starts = [tokenise.decode(tokeniser, row[:EXAMPLE_PROMPT].tolist()) for row in x]
        texts = [
            start if start.strip() else whole for start, whole in zip(starts, texts, strict=True)
        ]
    return pd.DataFrame({text["column"]: texts})


def written(network: torch.nn.Module, settings: dict, raw, params: dict | None) -> pd.DataFrame:
    """Each prompt of `raw` followed by what `network` writes on from it: `tokens` tokens
    drawn at `temperature` (0: the likeliest each time) among the `top_k` likeliest (0:
    all), from the random `seed`."""
    text, chosen = settings["text"], _checked({**DEFAULTS, **(params or {})})
    tokeniser = _tokeniser(text["saved"])
    generator = torch.Generator().manual_seed(int(chosen["seed"]))
    top_k = int(chosen["top_k"]) or None
    prompts, out = texts_of(raw, text["column"]), []
    for row, prompt in enumerate(prompts, 1):
        named = "the prompt" if len(prompts) == 1 else f"the prompt of row {row}"
        start = torch.tensor([_prompt_ids(tokeniser, prompt, text["context"], named)])
        tokens = generate(
            network,
            start,
            int(chosen["tokens"]),
            text["context"],
            float(chosen["temperature"]),
            top_k,
            generator,
        )
        out.append(prompt + tokenise.decode(tokeniser, tokens[0, start.shape[1] :].tolist()))
    return pd.DataFrame({COLUMN: out})


def _checked(params: dict) -> dict:
    """Generation's settings, or a DataError naming the one out of range."""
    wholes = {"tokens": (1, MOST_TOKENS), "top_k": (0, MOST_TOKENS), "seed": (0, 2**63 - 1)}
    for name, (low, high) in wholes.items():
        value = params[name]
        if isinstance(value, bool) or not isinstance(value, Integral) or not low <= value <= high:
            raise DataError(f"{name}={value!r} must be a whole number from {low} to {high}")
    value = params["temperature"]
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value < math.inf:
        raise DataError(f"temperature={value!r} must be a number >= 0")
    return params


def _prompt_ids(tokeniser, prompt: str, context: int, named: str) -> list[int]:
    ids = tokenise.encode(tokeniser, [prompt])[0]
    if not ids:
        raise DataError(f"{named} makes no tokens: give text the model can read")
    if len(ids) > context:
        raise DataError(
            f"{named} is {len(ids)} tokens, longer than the model's context of {context}: "
            f"shorten it to at most {context} tokens"
        )
    return ids
