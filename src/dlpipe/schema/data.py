"""The settings of the data sets, conf/data/*.yaml: those every data set has, and a
dataclass per data set with its source's own (dlpipe.data.sources)."""

from dataclasses import dataclass
from typing import Literal

from dlpipe.errors import ConfigError
from dlpipe.schema.check import setting

HeadTask = Literal["classification", "regression"]


@dataclass(kw_only=True)
class Split:
    val: float = setting(gt=0, lt=1)
    test: float = setting(gt=0, lt=1)
    seed: int = setting(ge=0)

    def __post_init__(self) -> None:
        if self.val + self.test >= 1:
            raise ConfigError(
                "data.split.val + data.split.test must be below 1 to leave training data"
            )


@dataclass(kw_only=True)
class Data:
    """What every data set has: read by the prepare stage and the loaders, not the source."""

    name: str
    split: Split
    batch_size: int = setting(gt=0)
    normalise: bool
    # Classification only, which the prepare stage checks once it has the data.
    train_per_class: int | None = setting(gt=0, default=None)


@dataclass(kw_only=True)
class Digits(Data):
    keep: list[int] | None = setting(ge=0, le=9)
    canvas: int | None = setting(ge=8)
    seed: int = setting(ge=0)


@dataclass(kw_only=True)
class LocatedDigits(Data):
    canvas: int = setting(ge=8)
    seed: int = setting(ge=0)


@dataclass(kw_only=True)
class Linear(Data):
    samples: int = setting(gt=0)
    noise: float = setting(ge=0)
    seed: int = setting(ge=0)


@dataclass(kw_only=True)
class Weather(Data):
    copies: int = setting(gt=0)


@dataclass(kw_only=True)
class Waves(Data):
    samples: int = setting(gt=0)
    steps: int = setting(gt=0)
    noise: float = setting(ge=0)
    seed: int = setting(ge=0)


@dataclass(kw_only=True)
class Sunspots(Data):
    window: int = setting(gt=0)
    horizon: int = setting(gt=0)


@dataclass(kw_only=True)
class Table(Data):
    path: str
    target: str | list[str] = setting(nonempty=True)
    task: HeadTask | list[HeadTask]
    categorical: list[str] | None


@dataclass(kw_only=True)
class Images(Data):
    path: str
    size: list[int] | None = setting(gt=0, length=2)
    channels: Literal[1, 3]


@dataclass(kw_only=True)
class Npz(Data):
    path: str
    task: HeadTask


@dataclass(kw_only=True)
class Series(Data):
    path: str
    column: str
    window: int = setting(gt=0)
    horizon: int = setting(gt=0)


DATA = {
    "digits": Digits,
    "located_digits": LocatedDigits,
    "linear": Linear,
    "weather": Weather,
    "waves": Waves,
    "sunspots": Sunspots,
    "table": Table,
    "images": Images,
    "npz": Npz,
    "series": Series,
}
