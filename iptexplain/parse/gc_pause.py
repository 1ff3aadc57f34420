"""The cyclic garbage collector held off while a rule graph is built."""

from __future__ import annotations

import gc


class _no_gc:
    """Building a rule graph allocates hundreds of thousands of objects and frees none of them,
    which sets off CPython's cyclic collector again and again over a heap that only grows (on a
    kube-proxy dump that is more than half the parse time).  Collect nothing while reading.  A
    large streamed input (the CLI's path) is then frozen (``gc.freeze``) so that later
    collections, in the tracer or the views, do not walk it either: the graph holds no reference
    cycles, refcounting still frees it; only cyclic garbage made before the freeze would stay,
    which a one-shot command does not mind and a long-lived caller of ``parse_save`` never gets."""

    def __init__(self, freeze: bool) -> None:
        self.freeze = freeze
        self.was_enabled = False

    def __enter__(self) -> None:
        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.was_enabled:
            if exc[0] is None and self.freeze:
                gc.freeze()
            gc.enable()
