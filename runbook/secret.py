"""Secret references and the values they resolve to.

A runbook never holds a secret, only a reference: ``${env:NAME}`` or ``${file:PATH}``.
References are resolved when a run starts executing, into :class:`Secret` objects that
print as ``***``. Every plaintext that was revealed is also registered with a
:class:`Redactor`, which the engine puts in front of the store, the logs and the reports,
so that a value a step copied into a plain string is still masked.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

from runbook.errors import SecretUnavailable

REFERENCE = re.compile(r"\$\{(env|file):([^}]+)\}")
MASK = "***"


class Secret:
    """A value that must not be shown. ``str()`` and ``repr()`` give ``***``."""

    __slots__ = ("_value", "reference")

    def __init__(self, value: str, reference: str = "") -> None:
        self._value = value
        self.reference = reference

    def reveal(self) -> str:
        """The plaintext. Call it only where the value is handed to a client."""
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({self.reference or MASK})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled or serialised")


def has_reference(text: str) -> bool:
    return REFERENCE.search(text) is not None


def check_reference_syntax(text: str) -> str | None:
    """Return a problem sentence when ``text`` has a malformed ``${...}`` reference."""
    for start in [m.start() for m in re.finditer(r"\$\{", text)]:
        match = REFERENCE.match(text, start)
        if match is None:
            return (
                f"'{text[start:start + 30]}' is not a secret reference; "
                "write ${env:NAME} or ${file:PATH}"
            )
    return None


class Redactor:
    """Masks every registered plaintext in strings and JSON-like data. Thread-safe."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, plaintext: str) -> None:
        # Very short values would mask ordinary words; a secret that short is a bug anyway.
        if len(plaintext) < 4:
            return
        with self._lock:
            if plaintext not in self._values:
                self._values.add(plaintext)
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def text(self, value: str) -> str:
        pattern = self._pattern
        return pattern.sub(MASK, value) if pattern else value

    def data(self, value: Any) -> Any:
        """A copy of JSON-like ``value`` with secrets masked and Secret objects replaced."""
        if isinstance(value, Secret):
            return MASK
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value


class SecretResolver:
    """Turns references into Secrets at execution time; registers each with the redactor."""

    def __init__(self, redactor: Redactor, base_dir: Path, environ: dict[str, str] | None = None):
        self.redactor = redactor
        self.base_dir = base_dir
        self.environ = os.environ if environ is None else environ

    def lookup(self, kind: str, name: str) -> str:
        if kind == "env":
            if name not in self.environ:
                raise SecretUnavailable(
                    f"environment variable {name} is not set; export it before running"
                )
            value = self.environ[name]
        else:
            path = Path(name).expanduser()
            if not path.is_absolute():
                path = self.base_dir / path
            try:
                value = path.read_text().rstrip("\n")
            except OSError as exc:
                raise SecretUnavailable(
                    f"secret file {path} cannot be read ({exc.strerror}); "
                    "check the path and its permissions"
                ) from None
        self.redactor.add(value)
        return value

    def resolve(self, value: Any) -> Any:
        """Replace every string holding a reference by a Secret (recursively)."""
        if isinstance(value, str) and has_reference(value):
            plain = REFERENCE.sub(lambda m: self.lookup(m.group(1), m.group(2)), value)
            self.redactor.add(plain)
            return Secret(plain, value)
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value


def reveal_text(value: Any) -> str | None:
    """A configured value as the text a client needs: a Secret revealed, None kept."""
    return None if value is None else str(reveal(value))


def reveal(value: Any) -> Any:
    """Plaintext copy of data holding Secrets, for handing to a client library."""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value
