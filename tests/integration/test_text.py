"""Text end to end, as a user runs it: a language model trained on a corpus file writes
text (samples in its MLflow run each epoch, `dlpipe generate`, the registered pyfunc), a
classifier trained on a table of labelled texts predicts classes from raw text, and a
tagger trained on a CoNLL-style file tags the words of raw text.

`dlpipe` runs in this process where a subprocess would only add start-up time.
"""

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import dlpipe_in, make_project, run, start_until

pytestmark = pytest.mark.slow

CORPUS = ["data=text_files", "data.path=corpus.txt", "data.text.context=32", "data.batch_size=32"]
TINY_GPT = ["model=gpt", "model.width=32", "model.heads=2", "model.layers=1"]
REVIEWS = [
    "data=text_table",
    "data.path=reviews.csv",
    "data.text_column=review",
    "data.label=verdict",
    "data.text.vocab_size=200",
    "data.text.context=16",
    "data.batch_size=16",
]


def write_corpus(path: Path) -> None:
    """Python's own documentation of a few statements: about 60,000 characters."""
    from pydoc_data.topics import topics

    path.write_text("\n\n".join(topics[key] for key in ("for", "while", "if", "try", "with")))


def write_reviews(path: Path, rows: int = 200) -> None:
    good = ["a fine film", "truly great acting", "loved every minute", "a joy to watch"]
    bad = ["a dull mess", "truly awful acting", "hated every minute", "a chore to watch"]
    genres = ["comedy", "drama", "horror"]
    texts, verdicts = [], []
    for i in range(rows):
        words = (good if i % 2 else bad)[i % 4]
        texts.append(f"{words} in a {genres[i % 3]}, said critic {i}")
        verdicts.append("fresh" if i % 2 else "rotten")
    genre = [genres[i % 3] for i in range(rows)]
    pd.DataFrame({"review": texts, "verdict": verdicts, "genre": genre}).to_csv(path, index=False)


TAGGED = [
    "data=conll",
    "data.path=people.conll",
    "data.text.vocab_size=300",
    "data.text.context=24",
]
FIRST = ["Anna", "Tom", "Maria", "Ivan", "Lena", "Omar", "Kofi", "Yuki", "Sara", "Paul", "Nina"]
LAST = ["Weber", "Hill", "Lopez", "Petrov", "Berg", "Haddad", "Mensah", "Sato", "Costa", "Klein"]
PLACES = ["Oslo", "Lima", "Cairo", "Porto", "Kyoto", "Quito", "Dakar", "Perth", "Turin"]
ORGS = ["Acme Corp", "Blue River Bank", "Nova Labs", "Red Cross", "Delta Air Lines"]
FRAMES = [
    "{P} met {P} in {L} .",
    "{P} works for {O} in {L} .",
    "the {O} office in {L} hired {P} on monday .",
    "yesterday {P} flew from {L} to {L} with {P} .",
]


def write_people(path: Path, sentences: int = 400, seed: int = 0) -> None:
    """Sentences of people (PER), places (LOC) and organisations (ORG), BIO-tagged, one
    word a line; names of one or two words drawn at random."""
    import random

    draw = random.Random(seed)
    entities = {
        "P": (
            "PER",
            lambda: " ".join(draw.sample(FIRST, 1) + draw.sample(LAST, draw.randint(0, 1))),
        ),
        "L": ("LOC", lambda: draw.choice(PLACES)),
        "O": ("ORG", lambda: draw.choice(ORGS)),
    }
    lines = []
    for _ in range(sentences):
        for word in draw.choice(FRAMES).split():
            if word[0] == "{":
                kind, name = entities[word[1]]
                named = name().split()
                lines += [f"{w} {'B' if i == 0 else 'I'}-{kind}" for i, w in enumerate(named)]
            else:
                lines.append(f"{word} O")
        lines.append("")
    path.write_text("\n".join(lines))


def trained(project: Path, data: list[str], model: list[str], epochs: int) -> str:
    """Prepare, train and evaluate; the run's id."""
    run([sys.executable, "pipelines/prepare.py", *data], project)
    train = [*data, *model, f"trainer.max_epochs={epochs}"]
    run([sys.executable, "pipelines/train.py", *train], project)
    run([sys.executable, "pipelines/evaluate.py"], project)
    return json.loads((project / "models" / "run.json").read_text())["run_id"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = make_project(tmp_path_factory.mktemp("text") / "project")
    write_corpus(project / "corpus.txt")
    write_reviews(project / "reviews.csv")
    write_people(project / "people.conll")
    return project


@pytest.fixture(scope="module")
def language_model(project: Path) -> str:
    return trained(project, CORPUS, TINY_GPT, epochs=2)


@pytest.fixture
def dlpipe(project: Path, monkeypatch, capsys):
    """Run `dlpipe ARGS` in the project; its exit code, stdout and stderr."""
    return dlpipe_in(project, monkeypatch, capsys)


def test_a_language_model_logs_its_metrics_and_samples_every_epoch(project, language_model):
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert {"test/loss", "test/perplexity", "test/bpc"} <= set(metrics)
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    history = client.get_metric_history(language_model, "val/bpc")
    assert [point.step for point in history] == [0, 1]
    samples = [item.path for item in client.list_artifacts(language_model, "samples")]
    assert samples == ["samples/epoch_001.txt", "samples/epoch_002.txt"]
    written = client.download_artifacts(language_model, "samples/epoch_002.txt", str(project))
    assert Path(written).read_text().count("--- sample") == 3  # three prompts, each continued
    assert (project / "reports" / "plots" / "samples.txt").is_file()


def test_generate_writes_the_same_text_for_the_same_seed(dlpipe, language_model):
    args = ["generate", language_model, "--prompt", "The for", "--tokens", "40", "--seed", "3"]
    code, first, err = dlpipe(*args)
    assert code == 0, err
    assert first.startswith("The for") and len(first) > len("The for") + 20
    assert dlpipe(*args)[1] == first
    assert dlpipe(*args[:-1], "4")[1] != first


def test_the_registered_model_writes_text_as_a_pyfunc(project, language_model):
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/corpus@champion")
    out = model.predict(pd.DataFrame({"text": ["The while", "if x"]}), params={"tokens": 10})
    assert list(out.columns) == ["text"] and out["text"][1].startswith("if x")


def test_a_prompt_longer_than_the_context_is_refused_in_one_line(dlpipe, language_model):
    code, out, err = dlpipe("generate", language_model, "--prompt", "x" * 40)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "error: the prompt is 40 tokens, longer than the model's context of 32: shorten it to "
        "at most 32 tokens"
    ]


def test_a_language_model_killed_mid_training_goes_on_to_the_same_end(
    project, language_model, tmp_path
):
    """kill -9 after the first of two epochs, then the same command: the training goes on
    from models/last.ckpt in its run, and ends as the uninterrupted one (the fixture's)."""
    copy = tmp_path / "project"
    shutil.copytree(project, copy, symlinks=True)
    shutil.rmtree(copy / "models")
    command = [sys.executable, "pipelines/train.py", *CORPUS, *TINY_GPT, "trainer.max_epochs=2"]
    killed = start_until(command, copy, "epoch 1/2", start_new_session=True)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.communicate(timeout=60)
    run_id = json.loads((copy / "models" / "resume.json").read_text())["run_id"]
    said = run(command, copy)
    assert f"resuming run {run_id} from models/last.ckpt after epoch 1" in said.stdout + said.stderr
    client = MlflowClient(f"sqlite:///{copy / 'mlflow.db'}")
    assert client.get_run(run_id).info.status == "FINISHED"
    resumed, whole = (client.get_metric_history(i, "val/bpc") for i in (run_id, language_model))
    assert [(m.step, m.value) for m in resumed] == [(m.step, m.value) for m in whole]
    samples = [item.path for item in client.list_artifacts(run_id, "samples")]
    assert samples == ["samples/epoch_001.txt", "samples/epoch_002.txt"]
    written = [
        Path(client.download_artifacts(i, "samples/epoch_002.txt", str(tmp_path / i))).read_text()
        for i in (run_id, language_model)
    ]
    assert written[0] == written[1]


def test_a_search_of_language_models_minimises_their_loss(project, language_model):
    search = [
        sys.executable,
        "pipelines/train.py",
        "-m",
        *CORPUS,
        "model=rnn_lm",
        "model.width=16",
        "model.layers=1",
        "search.n_trials=2",
        "trainer.max_epochs=1",
    ]
    refused = run([*search, "search=digits", "search.study=upward"], project, check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: study 'upward' would maximize val/loss, which is better lower: set "
        "hydra.sweeper.direction=minimize (search=language_model does, for language models) "
        "and a new search.study (a study keeps its first direction)"
    )
    storage = f"sqlite:///{project / 'optuna.db'}"
    upward = optuna.load_study(study_name="upward", storage=storage).trials
    assert [t.state for t in upward] == [optuna.trial.TrialState.FAIL]  # stopped at the first
    run([*search, "search=language_model", "search.study=downward"], project)
    trials = optuna.load_study(study_name="downward", storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    (best,) = project.glob("multirun/*/*/best_params.yaml")
    assert yaml.safe_load(best.read_text())["value"] == min(t.value for t in trials)
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("dlpipe").experiment_id
    assert not client.search_runs([experiment], "attributes.status = 'RUNNING'")


def test_a_sweep_of_language_models_is_one_parent_with_a_child_each(project, language_model):
    sweep = [*CORPUS, "model=rnn_lm", "model.width=16,32", "model.layers=1", "trainer.max_epochs=1"]
    run([sys.executable, "pipelines/train.py", "-m", *sweep], project)
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    every = client.search_runs([client.get_experiment_by_name("dlpipe").experiment_id])
    # The sweep's, not a search's (whose children are trials).
    children = [
        found
        for found in every
        if "mlflow.parentRunId" in found.data.tags and "optuna.trial" not in found.data.tags
    ]
    (parent,) = {child.data.tags["mlflow.parentRunId"] for child in children}
    assert "dlpipe.sweep_dir" in client.get_run(parent).data.tags
    assert sorted(child.data.params["model.width"] for child in children) == ["16", "32"]
    assert all(child.info.status == "FINISHED" for child in children)
    assert all("val/bpc" in child.data.metrics for child in children)


def test_a_classifier_of_texts_predicts_classes_from_raw_text(project, language_model, dlpipe):
    run_id = trained(project, REVIEWS, ["model=bert", "model.width=32", "model.heads=2"], epochs=3)
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert metrics["test/acc"] >= 0.9 and "test/f1" in metrics
    pd.DataFrame({"review": ["truly great acting", "a dull mess"]}).to_csv(
        project / "new.csv", index=False
    )
    code, out, err = dlpipe("predict", run_id, "new.csv")
    assert code == 0, err
    assert out.splitlines()[0] == "class,prob_fresh,prob_rotten"
    assert [line.split(",")[0] for line in out.splitlines()[1:]] == ["fresh", "rotten"]
    code, _, err = dlpipe("generate", run_id, "--prompt", "a fine")
    assert code == 2 and "is a classification model, which writes no text" in err


def test_texts_with_two_labels_train_a_head_each_and_predict_both(project, dlpipe):
    labels = [
        item if item != "data.label=verdict" else "data.label=[verdict,genre]" for item in REVIEWS
    ]
    run_id = trained(project, labels, ["model=bert", "model.width=32", "model.heads=2"], epochs=6)
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert metrics["test/verdict/acc"] >= 0.9 and metrics["test/genre/acc"] >= 0.9, metrics
    pd.DataFrame({"review": ["truly great acting in a horror"]}).to_csv(
        project / "new.csv", index=False
    )
    code, out, err = dlpipe("predict", run_id, "new.csv")
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split(",") == [
        "verdict",
        "verdict_prob_fresh",
        "verdict_prob_rotten",
        "genre",
        "genre_prob_comedy",
        "genre_prob_drama",
        "genre_prob_horror",
    ]
    assert row.split(",")[0] == "fresh" and row.split(",")[3] == "horror"


def test_a_tagger_of_words_finds_their_entities_and_tags_raw_text(project, dlpipe):
    bert = ["model=bert", "model.pool=none", "model.width=32", "model.heads=2"]
    run_id = trained(project, TAGGED, bert, epochs=10)
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert set(metrics) == {"test/acc", "test/f1", "test/loss", "test/precision", "test/recall"}
    assert metrics["test/f1"] >= 0.9, metrics
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    assert len(client.get_metric_history(run_id, "val/f1")) == 10  # the monitor, each epoch
    pd.DataFrame({"text": ["Nina Costa met Omar in Kyoto ."]}).to_csv(
        project / "new.csv", index=False
    )
    code, out, err = dlpipe("predict", run_id, "new.csv")
    assert code == 0, err
    header, row = out.splitlines()
    assert header == "words,tags"
    words, tags = row.split(",")
    assert words == "Nina Costa met Omar in Kyoto ."
    assert tags == "B-PER I-PER O B-PER O B-LOC O"
