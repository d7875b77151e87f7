"""Output locations. They are fixed, not timestamped, so that dvc.yaml can declare them.

Prepared data sits under the project root (the working directory of every stage). A
training writes models/ and reports/ under a root: the project root for a single run, the
job's own folder in a Hydra multirun sweep, so that jobs never overwrite each other.
"""

from dataclasses import dataclass
from pathlib import Path

PREPARED_DIR = Path("data/prepared")


@dataclass(frozen=True)
class Outputs:
    root: Path = Path(".")

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def best_ckpt(self) -> Path:
        return self.models / "best.ckpt"

    @property
    def last_ckpt(self) -> Path:
        return self.models / "last.ckpt"

    @property
    def resume_file(self) -> Path:
        """The interrupted training's run id, beside its checkpoints (see
        dlpipe.training.resume)."""
        return self.models / "resume.json"

    @property
    def lock_file(self) -> Path:
        """Held by the training writing into models/ (see dlpipe.training.resume.holding); a
        dot-file that .dvcignore keeps out of the models/ DVC caches."""
        return self.models / ".training.lock"

    @property
    def run_file(self) -> Path:
        return self.models / "run.json"

    @property
    def history_file(self) -> Path:
        return self.models / "history.json"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def plots(self) -> Path:
        return self.reports / "plots"

    @property
    def metrics_file(self) -> Path:
        return self.reports / "metrics.json"


# The outputs dvc.yaml declares: models/ and reports/ at the project root.
PROJECT = Outputs()
