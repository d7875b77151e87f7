"""Fixed output locations, relative to the project root (the working directory of every stage).

They are fixed, not timestamped, so that dvc.yaml can declare them as stage outputs.
"""

from pathlib import Path

PREPARED_DIR = Path("data/prepared")
MODELS_DIR = Path("models")
REPORTS_DIR = Path("reports")
PLOTS_DIR = REPORTS_DIR / "plots"

BEST_CKPT = MODELS_DIR / "best.ckpt"
RUN_FILE = MODELS_DIR / "run.json"
HISTORY_FILE = MODELS_DIR / "history.json"
METRICS_FILE = REPORTS_DIR / "metrics.json"
