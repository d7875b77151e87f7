"""The filter and sort grammar of `dlpipe runs`: the part of MLflow's search syntax that
picks runs by their params, metrics, tags and attributes.

    metrics.test/acc > 0.98 and params.model.name = 'cnn'
    attributes.status != 'FAILED' and tags.`mlflow.parentRunId` = '<run id>'

A clause is `<kind>.<key> <op> <value>`; clauses are joined by `and`. Keys holding spaces
or quotes are backquoted, as in MLflow; others may be written bare (`test/acc`, which
MLflow itself wants backquoted). Metrics and the start and end times compare as numbers,
with = != < <= > >=; params, tags and the other attributes as quoted strings, with = !=
LIKE and ILIKE (LIKE is case-sensitive, as in MLflow; `%` matches any text).
"""

import re
from dataclasses import dataclass

from dlpipe.errors import DlpipeError

# MLflow's names for each kind, and the one used here.
KINDS = {
    "metrics": "metrics",
    "metric": "metrics",
    "params": "params",
    "param": "params",
    "parameters": "params",
    "tags": "tags",
    "tag": "tags",
    "attributes": "attributes",
    "attribute": "attributes",
    "attr": "attributes",
    "run": "attributes",
}
NUMERIC_ATTRIBUTES = ("start_time", "end_time")
STRING_ATTRIBUTES = ("run_id", "run_name", "status", "user_id", "artifact_uri")
_NUMBER_OPS = ("=", "!=", "<", "<=", ">", ">=")
_STRING_OPS = ("=", "!=", "LIKE", "ILIKE")
_EXAMPLE = "metrics.test/acc > 0.98 and params.model.name = 'cnn'"

_KEY = r"(?P<kind>[A-Za-z]+)\.(?:`(?P<quoted>[^`]+)`|(?P<bare>[^\s`'\"<>=!]+))"
_CLAUSE = re.compile(
    rf"\s*{_KEY}\s*(?P<op>!=|<=|>=|=|<|>|(?i:ilike|like)(?=\s))\s*"
    r"""(?P<value>'[^']*'|"[^"]*"|[^\s'"]+)\s*"""
)
_AND = re.compile(r"and\s", re.IGNORECASE)
_ORDER = re.compile(rf"\s*{_KEY}(?:\s+(?P<direction>(?i:asc|desc)))?\s*")


class QueryError(DlpipeError):
    """A --filter, --sort or --columns the runs cannot be searched or shown by."""


@dataclass(frozen=True)
class Key:
    """A run's param, metric, tag or attribute: `kind` is params, metrics, tags or attributes."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}.{self.name}"

    def mlflow(self) -> str:
        """The key as MLflow's parser takes it: backquoted unless it is an attribute."""
        return str(self) if self.kind == "attributes" else f"{self.kind}.`{self.name}`"


@dataclass(frozen=True)
class Clause:
    """`key op value`: value is a float for metrics and times, else a string."""

    key: Key
    op: str
    value: float | str

    def mlflow(self) -> str:
        return f"{self.key.mlflow()} {self.op} {self.value!r}"


@dataclass(frozen=True)
class Order:
    key: Key
    descending: bool = False

    def mlflow(self) -> str:
        return f"{self.key.mlflow()} {'DESC' if self.descending else 'ASC'}"


def parse_filter(text: str) -> list[Clause]:
    """The clauses of a filter, in order; none for an empty one.

    Raises:
        QueryError: text the grammar does not hold, or a value of the wrong kind.
    """
    clauses, position = [], 0
    while text[position:].strip():
        if clauses:
            joined = _AND.match(text, position)
            if not joined:
                _bad_filter(text, position, "clauses are joined by 'and'")
            position = joined.end()
        found = _CLAUSE.match(text, position)
        if not found:
            _bad_filter(text, position, "a clause is <kind>.<key> <op> <value>")
        clauses.append(_clause(found))
        position = found.end()
    return clauses


def parse_order(text: str) -> Order:
    """`metrics.test/acc` (ascending) or `metrics.test/acc DESC`."""
    found = _ORDER.fullmatch(text)
    if not found:
        raise QueryError(
            f"cannot sort by {text!r}: write <kind>.<key> [ASC|DESC], e.g. 'metrics.test/acc DESC'"
        )
    direction = (found["direction"] or "asc").lower()
    return Order(_key(found), descending=direction == "desc")


def parse_key(text: str) -> Key:
    """`params.model.name`, `metrics.test/acc` or `tags.dlpipe.version`: a column to show."""
    found = re.fullmatch(_KEY, text.strip())
    if not found:
        raise QueryError(f"no such column {text!r}: write <kind>.<key>, e.g. params.optim.lr")
    return _key(found)


def _key(found: re.Match) -> Key:
    kind = KINDS.get(found["kind"].lower())
    if kind is None:
        raise QueryError(
            f"unknown kind {found['kind']!r} in {found.group().strip()!r}: "
            "use metrics, params, tags or attributes"
        )
    key = Key(kind, found["quoted"] or found["bare"])
    attributes = (*NUMERIC_ATTRIBUTES, *STRING_ATTRIBUTES)
    if kind == "attributes" and key.name not in attributes:
        raise QueryError(f"unknown attribute {key.name!r}: choose one of {', '.join(attributes)}")
    return key


def _clause(found: re.Match) -> Clause:
    key, op, raw = _key(found), found["op"].upper(), found["value"]
    quoted = raw[0] in "'\""
    numeric = key.kind == "metrics" or key.name in NUMERIC_ATTRIBUTES
    ops = _NUMBER_OPS if numeric else _STRING_OPS
    if op not in ops:
        raise QueryError(f"{key} takes the operators {' '.join(ops)}, not {op}")
    if not numeric:
        if not quoted:
            raise QueryError(f"{key} compares with a quoted string: {key} {op} '{raw}'")
        return Clause(key, op, raw[1:-1])
    try:
        return Clause(key, op, float(raw))
    except ValueError:
        raise QueryError(f"{key} compares with a number, got {raw}") from None


def _bad_filter(text: str, position: int, expected: str) -> None:
    raise QueryError(f'bad filter at {text[position:].strip()!r}: {expected}, e.g. "{_EXAMPLE}"')
