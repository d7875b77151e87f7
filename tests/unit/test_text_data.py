"""Text data: tokenisers, the prepare stage's token ids and splits, and text in for a
served model, with bad input said in one line."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from dlpipe.data import tokenise
from dlpipe.data.arrays import load_prepared
from dlpipe.data.prepare import prepare
from dlpipe.data.text_prepare import corpus_splits
from dlpipe.errors import ConfigError, DataError
from dlpipe.serving import text as served

SAMPLE = "Ünïcode and ASCII: for x in range(10):\n\tprint(x)  # done.\n"
WORDS = ["red apple", "green pear", "ripe red cherry", "sour green lime", "red berry jam"]


def data_cfg(target: str, tokeniser: str = "char", **settings) -> dict:
    return OmegaConf.create(
        {
            "_target_": target,
            "name": "texts",
            "split": {"val": 0.2, "test": 0.2, "seed": 0},
            "batch_size": 4,
            "normalise": False,
            "text": {"tokeniser": tokeniser, "vocab_size": 300, "context": 8, "lowercase": False},
            **settings,
        }
    )


def labelled_table(path, rows: int = 60) -> str:
    texts = [f"{WORDS[i % 5]} number {i}" for i in range(rows)]
    labels = ["red" if "red" in text else "other" for text in texts]
    pd.DataFrame({"review": texts, "kind": labels}).to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_char_and_bpe_tokenisers_decode_their_ids_back_to_the_text(kind, tmp_path):
    tokeniser = tokenise.train([SAMPLE * 3], kind, 300, lowercase=False)
    ids = tokenise.encode(tokeniser, [SAMPLE])[0]
    assert tokenise.decode(tokeniser, ids) == SAMPLE
    tokenise.save(tokeniser, tmp_path / "tokeniser.json")
    again = tokenise.load(tmp_path / "tokeniser.json")
    assert tokenise.encode(again, [SAMPLE])[0] == ids


def test_wordpiece_keeps_the_words_and_padding_and_unknown_have_fixed_ids():
    tokeniser = tokenise.train([" ".join(WORDS) * 4], "wordpiece", 100, lowercase=True)
    ids = tokenise.encode(tokeniser, ["Red APPLE"])[0]
    assert tokenise.decode(tokeniser, ids) == "red apple"
    assert tokeniser.token_to_id(tokenise.PAD) == 0 and tokeniser.token_to_id(tokenise.UNKNOWN) == 1


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "char"])
def test_the_same_texts_train_the_same_tokeniser_every_time(kind):
    """Prepared data is reproducible: ties between equally frequent pieces are not broken
    by hash order (tokenizers' WordPiece trainer would, its issue 1794)."""
    texts = ["Wel come to the 🤗 Tok en izers libr ary.", *WORDS]
    trained = {tokenise.train(texts, kind, 300, lowercase=False).to_str() for _ in range(30)}
    assert len(trained) == 1


def test_a_vocabulary_too_small_for_byte_level_bpe_is_refused_in_one_line():
    with pytest.raises(
        ConfigError, match=r"^data.text.vocab_size=100 is below byte-level BPE's 258"
    ):
        tokenise.train(["text"], "bpe", 100, lowercase=False)


def test_labelled_texts_become_padded_ids_and_the_tokeniser_sees_training_texts_only(tmp_path):
    path = labelled_table(tmp_path / "train.csv")
    test = tmp_path / "test.csv"
    pd.DataFrame({"review": ["Ωmega red", "Ωmega pear"], "kind": ["red", "other"]}).to_csv(test)
    cfg = data_cfg(
        "dlpipe.data.text.text_table",
        path=path,
        text_column="review",
        label="kind",
        test_path=str(test),
        val_path=None,
    )
    meta = prepare(cfg, tmp_path / "prepared")
    assert meta["task"] == "classification" and meta["classes"] == ["other", "red"]
    tokeniser = tokenise.load(tmp_path / "prepared" / meta["text"]["file"])
    assert tokeniser.token_to_id("Ω") is None  # only the test file holds it
    data = load_prepared(tmp_path / "prepared")
    x_test, y_test = data.splits["test"]
    assert x_test.dtype == torch.int64 and x_test.shape == (2, 8)
    assert x_test[0, 0] == 1 and y_test.tolist() == [1, 0]  # Ω unknown; labels by class
    short = tokenise.encode(tokeniser, ["red"])[0]
    ids = tokenise.padded([short], 8)[0]
    assert ids[: len(short)].tolist() == short and not ids[len(short) :].any()


def test_several_label_columns_become_a_head_each_with_classes_from_training(tmp_path):
    path = labelled_table(tmp_path / "train.csv")
    frame = pd.read_csv(path)
    frame["size"] = ["small" if i % 3 else "large" for i in range(len(frame))]
    frame.to_csv(path, index=False)
    cfg = data_cfg(
        "dlpipe.data.text.text_table", path=path, text_column="review", label=["kind", "size"]
    )
    cfg.text.context = 40  # each text whole
    meta = prepare(cfg, tmp_path / "prepared")
    assert meta["task"] == "multitask" and meta["classes"] is None
    assert [(head["name"], head["classes"], head["outputs"]) for head in meta["heads"]] == [
        ("kind", ["other", "red"], 1),
        ("size", ["large", "small"], 1),
    ]
    assert meta["num_outputs"] == 2
    x, y = load_prepared(tmp_path / "prepared").splits["train"]
    assert x.dtype == torch.int64 and y.dtype == torch.float32 and y.shape == (len(x), 2)
    texts = tokenise.load(tmp_path / "prepared" / "tokeniser.json")
    first = tokenise.decode(texts, [token for token in x[0].tolist() if token])
    row = frame[frame["review"] == first].iloc[0]
    assert y[0].tolist() == [float(row["kind"] == "red"), float(row["size"] == "small")]


def test_a_label_of_one_column_no_training_text_has_is_named_with_its_column(tmp_path):
    path = labelled_table(tmp_path / "train.csv")
    frame = pd.read_csv(path).assign(size="small")
    frame.to_csv(path, index=False)
    test = tmp_path / "test.csv"
    frame.head(2).assign(size=["small", "huge"]).to_csv(test, index=False)
    cfg = data_cfg(
        "dlpipe.data.text.text_table",
        path=path,
        text_column="review",
        label=["kind", "size"],
        test_path=str(test),
    )
    with pytest.raises(DataError, match=r"^the test texts hold label 'huge' in column 'size',"):
        prepare(cfg, tmp_path / "prepared")


def test_a_corpus_is_cut_into_windows_whose_targets_are_the_next_tokens(tmp_path):
    corpus = tmp_path / "notes.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    meta = prepare(data_cfg("dlpipe.data.text.text_files", path=str(corpus)), tmp_path / "out")
    assert meta["task"] == "language_model" and meta["num_outputs"] == meta["text"]["vocab_size"]
    data = load_prepared(tmp_path / "out")
    x, y = data.splits["train"]
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(x[1, :4], x[0, 4:])  # windows overlap by half
    x, y = data.splits["val"]
    scored = y != tokenise.UNSCORED
    assert scored[0].all() and not scored[1:, :4].any() and scored[1:, 4:].all()
    assert torch.equal(x[:, 1:][scored[:, :-1]], y[:, :-1][scored[:, :-1]])
    # Each token of the text after the first once, in the order of the text.
    ids = torch.cat([y[0], *(row[4:] for row in y[1:])])
    assert torch.equal(ids, y[scored])
    assert torch.equal(x[0, 1:], ids[:7]) and torch.equal(x[1], ids[3:11])


def test_corpus_splits_share_no_text_and_follow_the_seed():
    texts = [f"text {i} " * 20 for i in range(10)]
    splits = corpus_splits(texts, 0.2, 0.2, seed=3)
    assert "".join(splits[name] for name in ("train", "val", "test")) == "\n\n".join(
        _shuffled(texts, 3)
    )
    assert corpus_splits(texts, 0.2, 0.2, seed=3) == splits != corpus_splits(texts, 0.2, 0.2, 4)


def _shuffled(texts, seed):
    import random

    order = list(texts)
    random.Random(seed).shuffle(order)
    return order


def test_an_empty_text_is_named_by_its_row(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"text": ["fine", "  ", "also"], "label": ["a", "b", "a"]}).to_csv(path)
    cfg = data_cfg("dlpipe.data.text.text_table", path=str(path))
    with pytest.raises(
        DataError,
        match=r"^data file .*t.csv: row 2 \(column 'text'\) holds no text: fill it or drop it$",
    ):
        prepare(cfg, tmp_path / "out")


def test_a_missing_label_column_is_named_with_the_setting_to_fix(tmp_path):
    path = labelled_table(tmp_path / "t.csv")
    cfg = data_cfg("dlpipe.data.text.text_table", path=path, text_column="review", label="stars")
    with pytest.raises(
        DataError, match=r"has no column 'stars' \(it has review, kind\): set data.label$"
    ):
        prepare(cfg, tmp_path / "out")


def test_texts_from_a_source_without_a_tokeniser_are_refused(tmp_path):
    path = labelled_table(tmp_path / "t.csv")
    cfg = data_cfg("dlpipe.data.text.text_table", path=path, text_column="review", label="kind")
    del cfg["text"]
    with pytest.raises(
        ConfigError, match=r"returned texts, which need a tokeniser: set data.text.tokeniser"
    ):
        prepare(cfg, tmp_path / "out")


def served_settings(task: str, context: int = 6) -> dict:
    tokeniser = tokenise.train(["abcdef ghij" * 5], "char", 50, lowercase=False)
    text = {"context": context, "saved": tokeniser.to_str(), "column": "review"}
    return {"task": task, "text": text}


def test_a_served_classifier_reads_its_column_and_names_an_empty_row():
    settings = served_settings("classification")
    ids = served.token_ids(settings, pd.DataFrame({"review": ["abc", "abcdefghij"], "id": [1, 2]}))
    assert ids.shape == (2, 6) and ids[0, 3:].eq(0).all() and ids[1].ne(0).all()
    with pytest.raises(DataError, match=r"^row 2 holds no text: give each row a text$"):
        served.token_ids(settings, pd.DataFrame({"review": ["abc", ""]}))


def test_a_prompt_longer_than_the_context_is_refused_in_one_line():
    class Echo(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(x, 50).float()

    settings = served_settings("language_model")
    with pytest.raises(
        DataError,
        match=r"^the prompt is 7 tokens, longer than the model's context of 6: shorten it to "
        r"at most 6 tokens$",
    ):
        served.written(Echo(), settings, np.array(["abcdefg"]), {"tokens": 2})
    written = served.written(Echo(), settings, np.array(["ab"]), {"tokens": 3, "temperature": 0})
    assert written["text"].tolist() == ["abbbb"]  # the likeliest next token: the last one again


@pytest.mark.parametrize("kind", ["char", "bpe", "wordpiece"])
def test_the_characters_of_a_text_s_tokens_add_up_to_its_length(kind):
    text = "Lists:  [1, 2]\n\n\tdef f(x):  # ok\n" * 20 + "Ωmega"
    tokeniser = tokenise.train([text], kind, 300, lowercase=False)
    chars = np.asarray(tokenise.token_chars(tokeniser, [text]))
    ids = tokenise.encode(tokeniser, [text])[0]
    assert chars[ids].sum() == pytest.approx(len(text))


def test_bits_per_character_of_a_uniform_model_are_log2_of_the_vocabulary_per_character():
    from dlpipe.tasks.objectives import language_model

    chars = [0.0, 1.0, 2.0, 3.0]  # [PAD] never a target
    objective = language_model(chars)
    y = torch.tensor([[1, 2, 3, 3]])
    logits = torch.zeros(1, 4, 4)
    metrics = objective.metrics(*objective.keep(logits, y, y))
    assert metrics["perplexity"].item() == pytest.approx(4.0)
    assert metrics["bpc"].item() == pytest.approx(2.0 * 4 / 9)  # 2 bits a token, 9 characters
    y[0, 1] = tokenise.UNSCORED  # scored in the window before: neither its bits nor its text
    assert objective.loss(logits, y, y).item() == pytest.approx(math.log(4))
    metrics = objective.metrics(*objective.keep(logits, y, y))
    assert metrics["bpc"].item() == pytest.approx(2.0 * 3 / 7)


def test_a_tokeniser_for_data_that_is_not_text_and_text_without_one_are_refused():
    from dlpipe.config.schema.data import check_data

    digits = {"_target_": "dlpipe.data.digits.digits", "name": "digits", "batch_size": 4}
    digits |= {"normalise": True, "split": {"val": 0.2, "test": 0.2, "seed": 0}}
    with pytest.raises(ConfigError, match=r"^data.text is set, but data 'digits' returns RawData"):
        check_data({**digits, "text": {"tokeniser": "char"}})
    docs = {**digits, "_target_": "dlpipe.data.text.python_docs", "normalise": False}
    with pytest.raises(ConfigError, match=r"returns texts, which need a tokeniser: set data.text"):
        check_data(docs)
    with pytest.raises(ConfigError, match=r"^data.normalise=True is not read for texts"):
        check_data({**docs, "normalise": True, "text": {"tokeniser": "char"}})


def test_a_column_of_numbers_is_not_taken_for_texts(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"text": ["a", "b"], "stars": [1, 2], "label": ["x", "y"]}).to_csv(path)
    cfg = data_cfg("dlpipe.data.text.text_table", path=str(path), text_column="stars")
    with pytest.raises(DataError, match=r"column 'stars' holds int64 values, not texts"):
        prepare(cfg, tmp_path / "out")
