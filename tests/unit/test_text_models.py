"""Text models on token ids: language models are causal and tie their embeddings, the
classifiers ignore padding, sampling is reproducible, and mismatches are refused in one line."""

import pytest
import torch

from dlpipe.errors import ConfigError
from dlpipe.models.registry import build_model, model_task
from dlpipe.models.sampling import generate
from tests.conftest import model_cfg

VOCAB = 11
CONTEXT = 16
# Small settings keep the tests quick; the mechanisms are the default families'.
SMALL = {
    "gpt": {"width": 16, "heads": 2, "layers": 2},
    "rnn_lm": {"width": 16},
    "bert": {"width": 16, "heads": 2, "feedforward": 32},
    "text_rnn": {"width": 8, "hidden": 16},
}


def build(name: str, num_outputs: int = VOCAB, **settings) -> torch.nn.Module:
    torch.manual_seed(0)
    values = model_cfg(name, **{**SMALL[name], **settings})
    return build_model(values, (CONTEXT,), num_outputs, VOCAB)


def texts(batch: int, steps: int = CONTEXT) -> torch.Tensor:
    """Token ids without [PAD] (id 0)."""
    return torch.randint(1, VOCAB, (batch, steps), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", ["gpt", "rnn_lm"])
def test_language_models_never_look_ahead(name):
    model = build(name).eval()
    x = texts(3)
    changed = x.clone()
    changed[:, 6:] = (x[:, 6:] % (VOCAB - 1)) + 1  # every token from position 6 on differs
    with torch.no_grad():
        before, after = model(x), model(changed)
    torch.testing.assert_close(before[:, :6], after[:, :6], atol=1e-6, rtol=0)
    assert not torch.allclose(before[:, 6:], after[:, 6:])


@pytest.mark.parametrize("name", ["gpt", "rnn_lm"])
@pytest.mark.parametrize("init", ["default", "xavier"])
def test_language_models_read_and_write_tokens_with_one_matrix(name, init):
    model = build(name, init=init)
    assert model.head.weight is model.embed.weight
    assert model.head.weight.data_ptr() == model.embed.weight.data_ptr()
    assert sum(p is model.embed.weight for p in model.parameters()) == 1


@pytest.mark.parametrize(
    "name,settings",
    [
        ("bert", {"pool": "cls"}),
        ("bert", {"pool": "mean"}),
        ("text_rnn", {}),
        ("text_rnn", {"cell": "gru", "bidirectional": True, "layers": 2}),
    ],
)
def test_padding_changes_no_output(name, settings):
    model = build(name, 4, **settings).eval()
    lengths = (16, 9, 5, 1)
    x = texts(len(lengths))
    padded = torch.where(torch.arange(CONTEXT) < torch.tensor(lengths)[:, None], x, 0)
    with torch.no_grad():
        out = model(padded)
        alone = torch.cat([model(x[i : i + 1, :n]) for i, n in enumerate(lengths)])
        more = model(torch.cat([padded[1:, :10], torch.zeros(3, 4, dtype=torch.long)], dim=1))
    torch.testing.assert_close(out, alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out[1:], more, atol=1e-5, rtol=1e-4)


def greedy(model: torch.nn.Module, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
    tokens = prompt
    with torch.no_grad():
        for _ in range(new_tokens):
            tokens = torch.cat([tokens, model(tokens)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return tokens


def test_sampling_is_reproducible_and_greedy_at_temperature_zero():
    model = build("gpt")
    prompt = texts(2, 3)

    def draw(seed: int, **options) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return generate(model, prompt, 10, CONTEXT, generator=generator, **options)

    first = draw(0)
    assert first.shape == (2, 13) and torch.equal(first[:, :3], prompt)
    assert torch.equal(first, draw(0))
    assert not torch.equal(first, draw(1))
    assert model.training  # its mode is restored
    expected = greedy(model.eval(), prompt, 10)
    assert torch.equal(draw(0, temperature=0.0), expected)
    assert torch.equal(draw(1, top_k=1), expected)


def test_a_prompt_longer_than_the_context_is_cropped():
    model = build("gpt")
    prompt = texts(1, CONTEXT + 4)
    out = generate(model, prompt, 3, CONTEXT, temperature=0.0)
    assert out.shape == (1, CONTEXT + 7)
    last = greedy(model.eval(), prompt[:, -CONTEXT:], 1)[:, -1]
    assert out[0, CONTEXT + 4] == last[0]


@pytest.mark.parametrize("name", ["gpt", "bert"])
def test_width_not_divisible_by_heads_is_named(name):
    with pytest.raises(
        ConfigError, match=r"^model\.width=30 must be a multiple of model\.heads=4$"
    ):
        build(name, width=30, heads=4)


@pytest.mark.parametrize("name", ["gpt", "rnn_lm", "bert", "text_rnn"])
def test_text_models_on_numbers_say_they_expect_token_ids(name):
    with pytest.raises(ConfigError) as caught:
        build_model(model_cfg(name), (12, 3), VOCAB)
    assert str(caught.value) == (
        f"model '{name}' expects token ids (texts shaped (steps,)), but the data has samples "
        "shaped (12, 3): choose a model for this data (e.g. model=mlp)"
    )


def test_models_of_numbers_on_token_ids_say_what_they_expect():
    with pytest.raises(ConfigError) as caught:
        build_model(model_cfg("mlp"), (CONTEXT,), 4, VOCAB)
    assert str(caught.value) == (
        "model 'mlp' (dlpipe.models.mlp.mlp) expects numbers, but the data holds token ids "
        "(texts shaped (16,)): choose a model that reads text (e.g. model=bert)"
    )


def test_a_language_model_scores_every_token_of_the_vocabulary():
    with pytest.raises(ConfigError, match=r"^model 'gpt' predicts the next of 11 tokens, but"):
        build("gpt", num_outputs=4)


def test_language_models_and_text_corpora_go_together():
    assert model_task(model_cfg("gpt"), "language_model") == "language_model"
    assert model_task(model_cfg("bert"), "classification") == "classification"
    with pytest.raises(ConfigError) as caught:
        model_task(model_cfg("gpt"), "classification")
    assert str(caught.value) == (
        "model 'gpt' is a language model (it predicts each next token), but the data's task "
        "is classification: train it on a text corpus (e.g. data=python_docs), or choose a "
        "model for this data"
    )
    with pytest.raises(ConfigError) as caught:
        model_task(model_cfg("bert"), "language_model")
    assert str(caught.value) == (
        "model 'bert' is not a language model (it predicts one output per sample), but the "
        "data is a text corpus to predict each next token of: choose model=gpt or model=rnn_lm"
    )
