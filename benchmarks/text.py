"""Text quality: dlpipe's language model against smoothed character n-grams, and its text
classifier against TF-IDF + logistic regression, on the same splits, in one run.

    python benchmarks/quality.py --part text

Language models: the presets conf/experiment/python_docs_gpt.yaml and
python_docs_lstm.yaml, each trained and evaluated as a user runs it on Python's own
documentation (data split seed 0, training seed 42); bits per character of the best
epoch on the validation text, and on the test text. Baseline:
interpolated Kneser-Ney character n-grams (benchmarks/ngram.py) of orders 2 to 8 fitted
on the same training text, the order chosen on the validation text. Bar: validation bits
per character at least 15% below the n-gram's.

Classification: the preset conf/experiment/rotten_tomatoes_bert.yaml (split seed 0,
training seed 42). Baseline: TF-IDF of words and word pairs with LogisticRegression,
fitted on the same training and validation reviews, scored on the same test reviews.
Bar: test accuracy within 3 points of the baseline's.
"""

import json
import time
from pathlib import Path

import ngram
from project import stage

LANGUAGE_MODELS, CLASSIFIER = ("python_docs_gpt", "python_docs_lstm"), "rotten_tomatoes_bert"
# Validation bits per character at most this fraction of the n-gram's.
LM_BAR = 0.85
# Test accuracy at most this far below the baseline's.
ACC_MARGIN = 0.03


def trained(project: Path, experiment: str) -> tuple[dict, float]:
    """Prepare, train and evaluate the preset; its test metrics and training seconds."""
    stage(project, "prepare.py", f"experiment={experiment}")
    start = time.perf_counter()
    stage(project, "train.py", f"experiment={experiment}")
    seconds = time.perf_counter() - start
    stage(project, "evaluate.py")
    return json.loads((project / "reports/metrics.json").read_text()), seconds


def best_epoch(project: Path, metric: str) -> float:
    """`metric` at the epoch the training kept (the lowest validation loss)."""
    history = json.loads((project / "models/history.json").read_text())
    kept = min(history, key=lambda epoch: epoch["val/loss"])
    return kept[metric]


def prepared(project: Path) -> dict:
    return json.loads((project / "data/prepared/meta.json").read_text())


def language_model_row(project: Path, experiment: str) -> str:
    from dlpipe.data.text import python_docs
    from dlpipe.data.text_prepare import corpus_splits

    metrics, seconds = trained(project, experiment)
    ours_val, ours_test = best_epoch(project, "val/bpc"), metrics["test/bpc"]
    cut = prepared(project)["data"]["split"]
    text = corpus_splits(python_docs().texts, cut["val"], cut["test"], cut["seed"])
    order, by_order = ngram.best_order(text["train"], text["val"])
    ngram_test = ngram.bits_per_char(ngram.fit(text["train"], order), text["test"])
    reached = ours_val <= LM_BAR * by_order[order]
    return (
        f"| `{experiment}` | val bpc {ours_val:.3f}, test {ours_test:.3f} | "
        f"Kneser-Ney order {order}: val {by_order[order]:.3f}, test {ngram_test:.3f} | "
        f"{ours_val / by_order[order] - 1:+.1%} | {seconds:.0f} s | "
        f"{'yes' if reached else 'NO'} |"
    )


def classifier_row(project: Path) -> str:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from dlpipe.data.text import rotten_tomatoes
    from dlpipe.data.text_prepare import labelled_splits

    metrics, seconds = trained(project, CLASSIFIER)
    settings = prepared(project)["data"]
    parts, _, _ = labelled_splits(rotten_tomatoes(plots=settings["plots"]), settings)
    fit_texts = parts["train"][0] + parts["val"][0]
    fit_labels = [*parts["train"][1], *parts["val"][1]]
    baseline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=1000)
    ).fit(fit_texts, fit_labels)
    test_texts, test_labels = parts["test"]
    theirs = float((baseline.predict(test_texts) == test_labels).mean())
    ours = metrics["test/acc"]
    reached = ours >= theirs - ACC_MARGIN
    return (
        f"| `{CLASSIFIER}` | test acc {100 * ours:.2f} | "
        f"TF-IDF + LogisticRegression {100 * theirs:.2f} | {100 * (ours - theirs):+.2f} pts | "
        f"{seconds:.0f} s | {'yes' if reached else 'NO'} |"
    )


def run_text(project: Path) -> None:
    """The text part: both rows, each against its baseline measured here."""
    print("| preset | dlpipe | baseline, same split | difference | training | reached |")
    print("|---|---|---|---|---|---|")
    for experiment in LANGUAGE_MODELS:
        print(language_model_row(project, experiment), flush=True)
    print(classifier_row(project), flush=True)
