"""One MLflow run as the store holds it, read without MLflow."""

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Run:
    """A run's attributes (times in milliseconds since the epoch) and its latest params,
    metrics and tags."""

    run_id: str
    run_name: str
    status: str
    start_time: int | None
    end_time: int | None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict:
        return asdict(self)
