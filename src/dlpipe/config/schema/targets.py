"""The settings of a part named by `_target_`, read from its signature before torch loads.

A part (a model, a task, a data source: dlpipe's own or a user's) is a function or a class
at `package.module.Name`. Its settings are its parameters, less those dlpipe passes itself
(a model's `input_shape` and `num_outputs`); their types come from its type hints, and what
a type cannot say (a range, a list's length) from `Annotated[type, Range(...)]`:

    def mlp(input_shape, num_outputs, hidden: Annotated[list[int], Range(gt=0)] = (256,)): ...

The module's source is read, not imported: checking a config stays as quick as composing
it. A part the source does not show plainly (one made by a factory, a class whose
`__init__` is inherited from another module) is imported to read its signature.
A user's package is found in the project folder (the working directory) or where Python
finds installed packages.
"""

import ast
import dataclasses
import importlib
import importlib.util
import inspect
import sys
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import reduce
from pathlib import Path
from typing import Annotated, Any, Literal

from dlpipe.config.schema.check import NULL, check_value, setting
from dlpipe.errors import ConfigError

REQUIRED = inspect.Parameter.empty


@dataclasses.dataclass(frozen=True)
class Range:
    """What a setting's type cannot say: bounds of its numbers (list items too), a list's
    length, or that a list holds something."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    length: int | None = None
    nonempty: bool = False


@dataclasses.dataclass(frozen=True)
class Setting:
    """One parameter of a part: its type as a config value takes it, and its default
    (REQUIRED when it has none)."""

    hint: Any
    default: Any
    range: Range

    @property
    def meta(self) -> dict:
        return setting(**dataclasses.asdict(self.range)).metadata


@dataclasses.dataclass(frozen=True)
class Signature:
    """A part's settings by name; `open` when it also takes any other (`**kwargs`);
    `returns`: the names its return type hint is made of (`tuple[np.ndarray, ...]`:
    tuple, ndarray), none where it has no hint."""

    settings: dict[str, Setting]
    open: bool = False
    returns: frozenset[str] = frozenset()


def signature(target: str, passed: Sequence[str] = ()) -> Signature:
    """The settings of the part at `target`, less the parameters in `passed`."""
    read = _read_source(target)
    if read is None:
        read = _read_imported(load(target))
    settings = {name: value for name, value in read.settings.items() if name not in passed}
    return Signature(settings, read.open, read.returns)


def check_settings(values: dict, found: Signature, path: str, label: str) -> dict:
    """`values` checked against a part's settings: none unknown (unless it takes any), none
    required left out, each of its type and in range. Messages name `path`.<setting>."""
    for key in values:
        if key not in found.settings and not found.open:
            takes = ", ".join(found.settings) or "no settings"
            raise ConfigError(f"{path}.{key} is not a setting of {label}: it takes {takes}")
    checked = {}
    for name, wanted in found.settings.items():
        key = f"{path}.{name}"
        if name not in values:
            if wanted.default is REQUIRED:
                raise ConfigError(f"{key} is required for {label}: set {key}=...")
            continue
        if values[name] == "???":
            raise ConfigError(f"{key} is required for {label}: set {key}=...")
        checked[name] = check_value(values[name], wanted.hint, wanted.meta, key)
    extra = {key: value for key, value in values.items() if key not in found.settings}
    return {**checked, **extra}


def load(target: str) -> Any:
    """The function or class at `target` (`package.module.Name`), imported."""
    module, _, name = target.rpartition(".")
    if not module:
        raise ConfigError(f"_target_ '{target}' must name package.module.Name")
    with _project_on_path():
        try:
            found = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"_target_ '{target}': no module named '{exc.name}'; put the package in the "
                "project folder or install it (pip install -e <its folder>)"
            ) from exc
    if not hasattr(found, name):
        raise ConfigError(f"_target_ '{target}': module '{module}' has no '{name}'")
    return getattr(found, name)


@contextmanager
def _project_on_path() -> Iterator[None]:
    """A user's package in the project folder imports as it would from there: the
    stages run as `python pipelines/<stage>.py`, which puts pipelines/ on the path."""
    here = str(Path.cwd())
    added = here not in sys.path
    if added:
        sys.path.append(here)
    try:
        yield
    finally:
        if added and here in sys.path:
            sys.path.remove(here)


def module_file(module: str) -> Path | None:
    """The source file of `module`, found without running it (its top package's spec is
    looked up, which imports nothing); None for a module without one."""
    top, *rest = module.split(".")
    with _project_on_path():
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            spec = None
    if spec is None:
        raise ConfigError(
            f"no module named '{top}': put the package in the project folder or install it "
            "(pip install -e <its folder>)"
        )
    if not rest:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    for location in spec.submodule_search_locations or ():
        folder = Path(location).joinpath(*rest[:-1])
        for candidate in (folder / f"{rest[-1]}.py", folder / rest[-1] / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _read_source(target: str) -> Signature | None:
    module, _, name = target.rpartition(".")
    if not module:
        raise ConfigError(f"_target_ '{target}' must name package.module.Name")
    path = module_file(module)
    if path is None:
        return None
    tree = ast.parse(path.read_text(), filename=str(path))
    definition = _definition(tree, name)
    if definition is None:
        return None
    return _Reader(tree).signature(definition)


def _definition(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    """The function `name`, or the `__init__` of the class `name` (or of its base class in
    the same module); None when the source does not show it plainly."""
    found = {
        node.name: node for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)
    }
    node = found.get(name)
    while isinstance(node, ast.ClassDef):
        init = next(
            (
                item
                for item in node.body
                if isinstance(item, ast.FunctionDef) and item.name == "__init__"
            ),
            None,
        )
        if init is not None:
            return init
        bases = [base.id for base in node.bases if isinstance(base, ast.Name)]
        node = found.get(bases[0]) if len(bases) == 1 else None
        if node is not None and not isinstance(node, ast.ClassDef):
            return None
    return node if isinstance(node, ast.FunctionDef) else None


# Names a type hint may use, by their last dotted part: `typing.Sequence` and `Sequence`.
_TYPES: dict[str, Any] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "list": list,
    "List": list,
    "tuple": tuple,
    "Tuple": tuple,
    "Sequence": Sequence,
    "dict": dict,
    "Dict": dict,
    "Mapping": Mapping,
    "Any": Any,
    "None": NULL,
    "Literal": Literal,
    "Optional": typing.Optional,
    "Union": typing.Union,
    "Annotated": Annotated,
}


class _Reader:
    """Evaluates the type hints of one module's source, following its own type aliases."""

    def __init__(self, tree: ast.Module):
        self.aliases = {
            node.targets[0].id: node.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        }
        self.aliases |= {
            node.target.id: node.value
            for node in tree.body
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value
        }
        self.following: set[str] = set()

    def signature(self, function: ast.FunctionDef) -> Signature:
        args = function.args
        positional = args.posonlyargs + args.args
        defaults = [REQUIRED] * (len(positional) - len(args.defaults)) + list(args.defaults)
        pairs = list(zip(positional, defaults, strict=True)) + list(
            zip(
                args.kwonlyargs,
                [d if d is not None else REQUIRED for d in args.kw_defaults],
                strict=True,
            )
        )
        settings = {}
        for arg, default in pairs:
            if arg.arg in ("self", "cls"):
                continue
            hint, given = _split_range(self.hint(arg.annotation))
            settings[arg.arg] = Setting(_config_type(hint), self.default(default), given)
        return Signature(settings, args.kwarg is not None, _names(function.returns))

    def default(self, node: Any) -> Any:
        if node is REQUIRED:
            return REQUIRED
        try:
            return ast.literal_eval(node)
        except ValueError:
            return _UNREADABLE

    def hint(self, node: ast.expr | None) -> Any:
        if node is None:
            return Any
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):  # a hint written as a string
                return self.hint(ast.parse(node.value, mode="eval").body)
            return NULL if node.value is None else Any
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return typing.Union[self.hint(node.left), self.hint(node.right)]  # noqa: UP007
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        name = _last_name(node)
        if name in self.aliases and name not in _TYPES and name not in self.following:
            self.following.add(name)  # an alias that names itself is not followed again
            try:
                return self.hint(self.aliases[name])
            finally:
                self.following.discard(name)
        return _TYPES.get(name, Any)

    def _subscript(self, node: ast.Subscript) -> Any:
        base = _TYPES.get(_last_name(node.value), Any)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base is Literal:
            return Literal[tuple(ast.literal_eval(item) for item in items)]
        if base is Annotated:
            return Annotated[self.hint(items[0]), *[self._range(item) for item in items[1:]]]
        if base is Any:
            return Any
        args = tuple(self.hint(item) for item in items if not _is_ellipsis(item))
        if base is tuple and len(args) > 1 and len(set(args)) == 1:
            return Annotated[list[args[0]], Range(length=len(args))]
        return base[args if len(args) > 1 else args[0]]

    def _range(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Call) and _last_name(node.func) == "Range":
            return Range(
                **{keyword.arg: ast.literal_eval(keyword.value) for keyword in node.keywords}
            )
        return None


_UNREADABLE = object()  # a default the source computes: any value the setting takes is fine


def _last_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _is_ellipsis(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is Ellipsis


def _read_imported(part: Callable) -> Signature:
    """The signature of an imported part, for what its source does not show plainly."""
    try:
        parameters = inspect.signature(part).parameters
        hints = typing.get_type_hints(
            part.__init__ if inspect.isclass(part) else part, include_extras=True
        )
    except (TypeError, ValueError, NameError):
        return Signature({}, open=True)
    settings = {}
    for name, parameter in parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        hint, given = _split_range(hints.get(name, Any))
        settings[name] = Setting(_config_type(hint), parameter.default, given)
    open_ = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    return Signature(settings, open_, _hint_names(hints.get("return")))


def _names(node: ast.expr | None) -> frozenset[str]:
    """The names a type hint's source is made of, each by its last dotted part; a hint in
    quotes is read as the hint it quotes."""
    if node is None:
        return frozenset()
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _names(ast.parse(node.value, mode="eval").body)
    found = set()
    for part in ast.walk(node):
        if isinstance(part, ast.Name):
            found.add(part.id)
        elif isinstance(part, ast.Attribute):
            found.add(part.attr)
    return frozenset(found)


def _hint_names(hint: Any) -> frozenset[str]:
    """The names of an imported part's return hint and of the types inside it."""
    if hint is None:
        return frozenset()
    inside = typing.get_args(hint)
    own = getattr(typing.get_origin(hint) or hint, "__name__", None)
    return frozenset({own} if own else set()).union(*map(_hint_names, inside))


def _split_range(hint: Any) -> tuple[Any, Range]:
    """A hint without its `Annotated` Range, and the Range (an empty one when none)."""
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        ranges = [extra for extra in extras if isinstance(extra, Range)]
        merged = reduce(lambda a, b: dataclasses.replace(a, **_given(b)), ranges, Range())
        inner, more = _split_range(base)
        return inner, dataclasses.replace(merged, **_given(more))
    return hint, Range()


def _given(found: Range) -> dict:
    # `is`, not `in (None, False)`: a bound of 0 equals False and must be kept.
    return {
        key: value
        for key, value in dataclasses.asdict(found).items()
        if value is not None and value is not False
    }


def _config_type(hint: Any) -> Any:
    """The type a config value of `hint` takes: sequences and tuples are YAML lists,
    mappings YAML mappings of names; what a config cannot hold is any value."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, type(int | None)):
        return reduce(lambda a, b: a | b, (_config_type(arg) for arg in args))  # type: ignore[operator]
    if origin is Literal or hint in (int, float, str, bool, NULL) or hint is Any:
        return hint
    if origin in (list, tuple, Sequence) or hint in (list, tuple, Sequence):
        item = next((arg for arg in args if arg is not Ellipsis), Any)
        return list[_config_type(item)]
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return dict[str, _config_type(args[1]) if len(args) == 2 else Any]
    if origin is Annotated:
        return _config_type(_split_range(hint)[0])
    return Any
