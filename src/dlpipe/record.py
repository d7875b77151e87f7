"""models/run.json, the record a training leaves beside its checkpoints: which MLflow run
it was, and what evaluate, predict and the registry need to rebuild its model.

`RunRecord` declares each field once; the serving settings and the config keys that
describe the trained model are read from the fields' roles, not listed again. The file
stays a plain JSON object of those fields. It imports neither torch nor MLflow:
`dlpipe predict` and the evaluate stage's checks read it before either loads.
"""

import dataclasses
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from dlpipe import files
from dlpipe.errors import DataError

TRAIN_FIRST = "run the train stage first: `dvc repro train` or `python pipelines/train.py`"

# A field's roles, in its metadata. SERVED: it rebuilds the network or names what the
# network was trained on, so the serving settings hold it. CONFIG: the config key it was
# taken from, for a field describing the trained model (evaluate refuses an override
# that contradicts it).
SERVED, CONFIG = "served", "config"


@dataclass(frozen=True)
class RunRecord:
    """What one finished training recorded about itself (models/run.json).

    Fields with a default came later than the others: a record written before them reads
    as holding none (single-head data, a built-in task).
    """

    run_id: str = field(metadata={SERVED: True})
    """The training's MLflow run: evaluate logs its metrics, plots and model to it."""
    experiment: str
    """The MLflow experiment holding that run."""
    data: dict = field(metadata={CONFIG: "data"})
    """The data settings (`data`) the model was trained on."""
    registry_name: str | None
    """The registered model its versions go to under registry.name=auto (after the data
    set); None: logged, not registered."""
    model: dict = field(metadata={SERVED: True, CONFIG: "model"})
    """The model's settings (`model`: its `_target_` and the builder's settings)."""
    task: str = field(metadata={SERVED: True})
    """The task it was trained for (classification, regression, ...), as its TaskKind names it."""
    input_shape: list[int] = field(metadata={SERVED: True})
    """The shape of one input sample, as the network takes it."""
    num_outputs: int = field(metadata={SERVED: True})
    """How many values the network answers per sample."""
    classes: list[str] | None = field(metadata={SERVED: True})
    """The class names, in the order of the network's outputs; None: not a classifier."""
    data_hash: str = field(metadata={SERVED: True})
    """The digest of the prepared data it was trained on (meta.json's `hash`)."""
    best_checkpoint: str
    """The checkpoint holding its best weights (models/best.ckpt)."""
    best_checkpoint_sha256: str
    """That checkpoint's digest: evaluate refuses a checkpoint another training saved."""
    monitor: str
    """The validation metric the best checkpoint was chosen by."""
    best_score: float
    """That metric's value at the best checkpoint."""
    task_config: dict | None = field(default=None, metadata={CONFIG: "task"})
    """A user's task (`task`: its `_target_` and settings), built again to score the model;
    None: the built-in task `task` names."""
    heads: list[dict] | None = field(default=None, metadata={SERVED: True})
    """The heads of multi-task data (the prepared meta.json's); None: one target."""
    shared: int | None = field(default=None, metadata={SERVED: True, CONFIG: "multitask.shared"})
    """The width of the body the heads share (`multitask.shared`)."""
    vocab_size: int | None = field(default=None, metadata={SERVED: True})
    """The size of the vocabulary text data's token ids come from; None: not text."""
    refit_epochs: int | None = None
    """How many epochs the model in best_checkpoint was trained anew for on the training
    and validation splits together (trainer.refit), as many as the epoch chosen by
    `monitor` had; None: it is that epoch's own model."""

    def as_dict(self) -> dict[str, Any]:
        """The record as the JSON object models/run.json holds."""
        return dataclasses.asdict(self)

    def serving(self) -> dict[str, Any]:
        """The fields that rebuild the network and name what it was trained on, as the
        serving settings hold them."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata.get(SERVED)
        }

    def settings(self) -> dict[str, Any]:
        """The settings describing the trained model, by the config key each was taken from."""
        return {key: getattr(self, name) for key, name in self.configured().items()}

    @classmethod
    def configured(cls) -> dict[str, str]:
        """The fields describing the trained model by the config key each was taken from."""
        return {f.metadata[CONFIG]: f.name for f in dataclasses.fields(cls) if CONFIG in f.metadata}

    def write(self, path: Path) -> None:
        """Write the record to `path` atomically: a reader sees the old record or this one."""
        files.write_json(path, self.as_dict())

    @classmethod
    def read(cls, path: Path, fix: str = TRAIN_FIRST) -> "RunRecord":
        """The record at `path`.

        Args:
            fix: how to get a good record; it ends the error message.

        Raises:
            DataError: the file is missing, not a JSON object, lacks a field or holds one
                of the wrong kind, in one line naming the file and ending with `fix`.
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path} is missing: {fix}")
        try:
            held = files.read_json(path)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path} is unreadable ({exc}): {fix}") from exc
        if not isinstance(held, dict):
            raise DataError(f"{path} is unreadable (not a JSON object): {fix}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        required = [f.name for f in known.values() if f.default is dataclasses.MISSING]
        missing = [name for name in required if name not in held]
        if missing:
            raise DataError(f"{path} lacks {', '.join(missing)}: {fix}")
        for name, value in held.items():
            if name in known and not _fits(value, known[name].type):
                raise DataError(
                    f"{path} holds a {type(value).__name__} as {name}, not "
                    f"{_shown(known[name].type)}: {fix}"
                )
        # A field a later dlpipe added is left out: this one has no use for it.
        return cls(**{name: value for name, value in held.items() if name in known})


def _fits(value: Any, hint: Any) -> bool:
    """Whether the JSON `value` is of the kind the type `hint` names (containers by their
    kind only: their items are the readers' to check)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, arg) for arg in get_args(hint))
    if hint is type(None):
        return value is None
    kind = origin or hint
    if isinstance(value, bool) and kind is not bool:
        return False
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


def _shown(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint)
