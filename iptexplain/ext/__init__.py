"""The extension registry: one module per match or target, registered in one place.

Like iptables' ``extensions/`` directory, adding a match is adding a file: drop
``libxt_NAME.py`` into this package with a class decorated by :func:`register`, and the parser,
the listing reader, the tracer and the views pick it up.  Modules are imported on first lookup,
so commands that never parse (``--help``) do not pay for them.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TypeVar

from iptexplain.ext.base import Extension, Match, Target

MATCHES: dict[str, type[Match]] = {}
TARGETS: dict[str, type[Target]] = {}
_loaded = False

E = TypeVar("E", bound=type[Extension])


def register(cls: E) -> E:
    """Class decorator: make an extension known by its name and aliases."""
    table: dict = MATCHES if issubclass(cls, Match) else TARGETS
    for name in (cls.name, *cls.aliases):
        table[name] = cls
    return cls


def load_all() -> None:
    """Import every ``libxt_*`` / ``libipt_*`` module of this package once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith(("libxt_", "libipt_", "libip6t_")):
            importlib.import_module(f"{__name__}.{info.name}")


def match_class(name: str) -> type[Match] | None:
    load_all()
    return MATCHES.get(name) or MATCHES.get(name.lower())


def target_class(name: str) -> type[Target] | None:
    load_all()
    return TARGETS.get(name)
