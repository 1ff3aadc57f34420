"""The extension registry: one module per match or target, registered in one place.

Like iptables' ``extensions/`` directory, adding a match is adding a file: drop
``libxt_NAME.py`` into this package with a class decorated by :func:`register`, and the parser,
the listing reader, the tracer and the views pick it up.  Modules are imported on first lookup,
so commands that never parse (``--help``) do not pay for them, and a lookup imports only the
module named after the extension (:data:`_HOME` names the exceptions): a trace of a kube-proxy
dump imports the handful it meets, and ``-j KUBE-SVC-…`` imports none.
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
    """Import every ``libxt_*`` / ``libipt_*`` / ``libip6t_*`` module of this package once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in sorted(_module_names()):
        importlib.import_module(f"{__name__}.{name}")


_MODULES: frozenset[str] | None = None
_PREFIXES = ("libxt_", "libipt_", "libip6t_")


def _module_names() -> frozenset[str]:
    global _MODULES
    if _MODULES is None:
        _MODULES = frozenset(info.name for info in pkgutil.iter_modules(__path__)
                             if info.name.startswith(_PREFIXES))
    return _MODULES


# Names registered by a module named otherwise (every other name is its module's: the registry
# test holds the two to each other).
_HOME = {"ACCEPT": "libxt_standard", "DROP": "libxt_standard", "RETURN": "libxt_standard",
         "QUEUE": "libxt_standard"}


def _lookup(table: dict, *names: str):  # noqa: ANN202
    """The class registered for the first of ``names`` that has one, importing only the modules
    named after them (a trace needs a handful of the ~90 modules; ``-j KUBE-SVC-…`` names none)."""
    for name in names:
        cls = table.get(name)
        if cls is not None:
            return cls
    if _loaded:
        return None
    modules = _module_names()
    for name in names:
        home = _HOME.get(name)
        for module in ((home,) if home else tuple(prefix + name for prefix in _PREFIXES)):
            if module in modules:
                importlib.import_module(f"{__name__}.{module}")
        cls = table.get(name)
        if cls is not None:
            return cls
    return None


def match_class(name: str) -> type[Match] | None:
    lower = name.lower()
    return _lookup(MATCHES, name, lower) if lower != name else _lookup(MATCHES, name)


def target_class(name: str) -> type[Target] | None:
    return _lookup(TARGETS, name)
