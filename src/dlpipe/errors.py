"""Errors a user can fix. Stages print their message as one line and exit with code 2."""


class DlpipeError(Exception):
    """Base class: the message names what is wrong and how to fix it."""


class ConfigError(DlpipeError):
    """A config value is unknown, of the wrong kind or out of range."""


class DataError(DlpipeError):
    """Input or prepared data is missing or unusable."""


class TrackingError(DlpipeError):
    """The MLflow tracking store cannot be used."""


class TrainingError(DlpipeError):
    """Training cannot go on: its loss diverged to NaN or infinity."""


class OutputError(DlpipeError):
    """An output file cannot be written: a read-only folder, a full disk, something in the way."""


class LineageError(DlpipeError):
    """The code or data at hand is not what a run was trained with."""


class SearchMisdirected(ConfigError):
    """A search goes the other way from its objective: every trial would find the worst."""


class SearchStopped(DlpipeError):
    """A search stopped before its last trial: too many of its trials failed."""
