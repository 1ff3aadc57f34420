"""Shared pytest fixtures.

Kernel lab (tests/kernel_lab.py): real netfilter in private network namespaces.  Tests that
need it skip with the reason when the machine cannot run it (not root, tools missing), but
fail under CI (CI=true), see ``kernel_lab.require_lab``.
"""

from __future__ import annotations

import os
import sys
from typing import Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kernel_lab  # noqa: E402


@pytest.fixture(scope="module")
def kernel_labs() -> Iterator[kernel_lab.LabPool]:
    """Factory ``kernel_labs(topology, **kw) -> started Lab``; every lab it made is
    closed (processes killed, namespaces gone) when the module ends, pass or fail."""
    kernel_lab.require_lab()
    pool = kernel_lab.LabPool()
    try:
        yield pool
    finally:
        pool.close()
