"""Token classification: CoNLL-style files read, a tag per word at its first piece, the
entities' F1, a tagger's outputs per token, and tags served per word of raw text."""

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from dlpipe.data import tokenise
from dlpipe.data.arrays import load_prepared
from dlpipe.data.prepare import prepare
from dlpipe.data.tagged import conll, first_pieces
from dlpipe.errors import ConfigError, DataError
from dlpipe.models.bert import bert
from dlpipe.models.registry import build_model
from dlpipe.serving.text import tagged
from dlpipe.tasks.metrics import entity_spans, tagging

UNSCORED = tokenise.UNSCORED
NAMES = [("Anna", "Weber"), ("Tom", "Hill"), ("Maria", "Lopez"), ("Ivan", "Petrov")]
PLACES = ["Oslo", "Lima", "Cairo", "Porto"]


def write_conll(path, sentences: int = 40, header: bool = True) -> str:
    """Sentences "<first> <last> lives in <place> ." tagged B-PER I-PER O O B-LOC O."""
    lines = ["-DOCSTART- -X- O", ""] if header else []
    for i in range(sentences):
        first, last = NAMES[i % len(NAMES)]
        words = [(first, "B-PER"), (last, "I-PER"), ("lives", "O"), ("in", "O")]
        words += [(PLACES[i % len(PLACES)], "B-LOC"), (".", "O")]
        lines += [f"{word} NNP {tag}" for word, tag in words] + [""]
    path.write_text("\n".join(lines))
    return str(path)


def data_cfg(path: str, **settings) -> dict:
    return OmegaConf.create(
        {
            "_target_": "dlpipe.data.tagged.conll",
            "name": "conll",
            "path": path,
            "split": {"val": 0.2, "test": 0.2, "seed": 0},
            "batch_size": 4,
            "normalise": False,
            "tag_column": -1,
            "test_path": None,
            "val_path": None,
            "text": {"tokeniser": "wordpiece", "vocab_size": 60, "context": 8, "lowercase": False},
            **settings,
        }
    )


def test_a_conll_file_is_read_as_sentences_of_words_and_tags(tmp_path):
    found = conll(write_conll(tmp_path / "train.conll", sentences=3))
    assert len(found.sentences) == 3  # the -DOCSTART- line starts no sentence
    assert found.sentences[1] == ["Tom", "Hill", "lives", "in", "Lima", "."]
    assert found.tags[1] == ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]
    assert conll(str(tmp_path / "train.conll"), tag_column=1).tags[0][0] == "NNP"


def test_a_line_without_a_tag_and_a_file_without_words_are_named(tmp_path):
    (tmp_path / "bad.conll").write_text("Anna B-PER\nWeber\n")
    with pytest.raises(DataError, match="line 2 holds 1 column"):
        conll(str(tmp_path / "bad.conll"))
    (tmp_path / "empty.conll").write_text("\n-DOCSTART- O\n\n")
    with pytest.raises(DataError, match="holds no tagged words"):
        conll(str(tmp_path / "empty.conll"))


def test_each_word_s_tag_is_the_target_of_its_first_piece_only(tmp_path):
    meta = prepare(data_cfg(write_conll(tmp_path / "train.conll")), tmp_path / "prepared")
    assert meta["task"] == "token_classification"
    assert meta["classes"] == ["B-LOC", "B-PER", "I-PER", "O"]
    assert meta["num_outputs"] == 4 and meta["input_shape"] == [8]
    tokeniser = tokenise.load(tmp_path / "prepared" / meta["text"]["file"])
    pieces = {index: piece for piece, index in tokeniser.get_vocab().items()}
    x, y = load_prepared(tmp_path / "prepared").splits["train"]
    assert x.shape == y.shape == (24, 8)
    tags = [meta["classes"].index(tag) for tag in ("B-PER", "I-PER", "O", "O", "B-LOC", "O")]
    for ids, targets in zip(x.tolist(), y.tolist(), strict=True):
        for index, target in zip(ids, targets, strict=True):
            # Scored: a word's first piece; not: a piece that goes on with a word, padding.
            goes_on = index == 0 or pieces[index].startswith("##")
            assert (target == UNSCORED) == goes_on
        scored = [target for target in targets if target != UNSCORED]
        assert scored == tags[: len(scored)]
    # Small vocabulary: some words are cut into several pieces, the later ones unscored.
    assert (y == UNSCORED).sum() > (x == 0).sum()


def test_a_tag_no_training_word_has_is_named(tmp_path):
    test = tmp_path / "test.conll"
    test.write_text("Anna B-PER\nspoke O\nDutch B-LANG\n")
    cfg = data_cfg(write_conll(tmp_path / "train.conll"), test_path=str(test))
    with pytest.raises(DataError, match="the test sentences hold tag 'B-LANG'"):
        prepare(cfg, tmp_path / "prepared")


def test_a_split_too_small_to_hold_a_sentence_is_named(tmp_path):
    cfg = data_cfg(write_conll(tmp_path / "train.conll", sentences=3))
    with pytest.raises(ConfigError, match=r"split.val=0.1 gives 0 of the 2 sentences"):
        prepare(OmegaConf.merge(cfg, {"split": {"test": 0.2, "val": 0.1}}), tmp_path / "out")


def test_entities_are_read_from_bio_tags_as_conll_reads_them():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "B-LOC", "I-PER", "O"]
    assert entity_spans(tags) == {
        (0, 1, "PER"),
        (3, 4, "LOC"),
        (5, 5, "LOC"),
        (6, 6, "LOC"),
        (7, 7, "PER"),
    }
    assert entity_spans(["NOUN", "O", "VERB"]) == {(0, 0, "NOUN"), (2, 2, "VERB")}


def test_entity_f1_counts_whole_entities_and_leaves_unscored_steps_out():
    classes = ["B-PER", "I-PER", "O"]
    # Sentence 1: PER (0-1) found whole; sentence 2: PER (0-1) found as 0 only, and a
    # false PER at 2; the unscored steps (a word's later pieces) hold anything.
    y = torch.tensor([[0, UNSCORED, 1, 2], [0, 1, 2, UNSCORED]])
    predicted = torch.tensor([[0, 0, 1, 2], [0, 2, 0, 1]])
    found = tagging(predicted, y, classes)
    assert found["acc"] == pytest.approx(4 / 6)
    assert found["precision"] == pytest.approx(1 / 3) and found["recall"] == pytest.approx(1 / 2)
    assert found["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


def test_a_tagger_gives_a_row_per_token_that_padding_leaves_alone():
    torch.manual_seed(0)
    model = bert((8,), 3, 50, width=16, heads=2, layers=1, feedforward=32, pool="none").eval()
    x = torch.randint(2, 50, (2, 8))
    x[1, 5:] = 0
    with torch.no_grad():
        out = model(x)
        shorter = model(x[1:, :5])
    assert out.shape == (2, 8, 3)
    torch.testing.assert_close(out[1:, :5], shorter, atol=1e-5, rtol=1e-4)


def test_a_model_with_one_row_per_text_is_refused_for_tagged_words():
    with pytest.raises(Exception, match=r"the data needs \(2, 8, 3\).*per token"):
        build_model({"_target_": "dlpipe.models.bert.bert", "pool": "cls"}, (8,), 3, 50, True)


def test_served_tags_come_one_per_word_that_fits_the_context(tmp_path):
    meta = prepare(data_cfg(write_conll(tmp_path / "train.conll")), tmp_path / "prepared")
    tokeniser = tokenise.load(tmp_path / "prepared" / meta["text"]["file"])
    place_id = tokeniser.encode(["Oslo"], is_pretokenized=True).ids[0]

    def network(x: torch.Tensor) -> torch.Tensor:
        """Tags a piece "B-LOC" (0) where it is Oslo's first, else "O" (3)."""
        scores = torch.zeros(*x.shape, 4)
        scores[..., 3] = 1
        scores[..., 0] = 2 * (x == place_id)
        return scores

    settings = {
        "classes": meta["classes"],
        "text": {"saved": tokeniser.to_str(), "context": 8, "column": "text"},
    }
    words = "Anna went to Oslo and then Oslo again and again"
    out = tagged(network, settings, pd.DataFrame({"text": ["to Oslo", words]}))
    assert out["tags"].tolist()[0] == "O B-LOC"
    _, firsts = first_pieces(tokeniser, [words.split()], 8)
    kept = words.split()[: len(firsts[0])]
    assert out["words"].tolist()[1] == " ".join(kept) and len(kept) < len(words.split())
    assert out["tags"].tolist()[1].split() == ["B-LOC" if w == "Oslo" else "O" for w in kept]
