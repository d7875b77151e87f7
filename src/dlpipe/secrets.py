"""Masking what looks secret before it is logged: MLflow params and artifacts are shared
with everyone who can read the tracking store.

Masked: the value of any config key whose name looks secret (password, token, secret,
key, e.g. `tracking.api_key`), a password in a URL (`https://user:pw@host`), and, wherever
it appears, the value of an environment variable whose name looks secret (as when a
config reads `${oc.env:AWS_SECRET_ACCESS_KEY}`).
"""

import os
import re
from typing import Any

MASK = "***"
_SECRET_WORDS = ("password", "passwd", "token", "secret", "key")
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@", re.IGNORECASE)
# Shorter values (a 1, a "no") would mask unrelated text wherever they occur.
_SHORTEST_MASKED_VALUE = 4


def looks_secret(name: str) -> bool:
    """`tracking.api_key`, `DB_PASSWORD`, `authToken`: a word of the name is a secret word."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))  # authToken -> auth Token
    words = re.split(r"[^a-z0-9]+", spaced.lower())
    return any(word.endswith(_SECRET_WORDS) for word in words if word)


def secret_environment() -> list[str]:
    """Values of the environment variables whose names look secret, longest first."""
    values = {
        value
        for name, value in os.environ.items()
        if looks_secret(name) and len(value) >= _SHORTEST_MASKED_VALUE
    }
    return sorted(values, key=len, reverse=True)


def mask_text(text: str, hidden: list[str] | None = None) -> str:
    """`text` with URL passwords and secret environment values replaced by MASK."""
    masked = _URL_PASSWORD.sub(rf"\g<head>{MASK}@", text)
    for value in secret_environment() if hidden is None else hidden:
        masked = masked.replace(value, MASK)
    return masked


def mask(tree: Any, hidden: list[str] | None = None) -> Any:
    """A copy of a config tree (dicts, lists, values) with what looks secret masked."""
    hidden = secret_environment() if hidden is None else hidden
    if isinstance(tree, dict):
        return {
            key: MASK if looks_secret(key) and value is not None else mask(value, hidden)
            for key, value in tree.items()
        }
    if isinstance(tree, list):
        return [mask(item, hidden) for item in tree]
    if isinstance(tree, str):
        return mask_text(tree, hidden)
    return tree


def mask_override(override: str) -> str:
    """A command-line override, `key=value`, with its value masked when secret."""
    key, sep, _ = override.partition("=")
    if sep and looks_secret(key.lstrip("+~")):
        return f"{key}={MASK}"
    return mask_text(override)
