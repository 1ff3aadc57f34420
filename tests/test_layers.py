"""The package's layers run one way (docs/architecture.md), and imports sit at the top of the file.

Read from the source, not from a running interpreter: a module's top-level imports (``import`` and
``from ... import`` outside any function) must name its own layer or a lower one, and an import of
iptexplain inside a function body is allowed only where it is designed laziness -- listed here,
each with its reason -- never to dodge a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "iptexplain"

# Lowest first.  A module may import its own layer and those before it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("iptexplain.core", "iptexplain.numbers", "iptexplain.terminal"),
    ("iptexplain.ext", "iptexplain.nft.expr"),
    ("iptexplain.graph",),
    ("iptexplain.parse", "iptexplain.nft", "iptexplain.host", "iptexplain.schema"),
    ("iptexplain.inputs",),
    ("iptexplain.netfilter",),
    ("iptexplain.analysis",),
    ("iptexplain.render",),
    ("iptexplain.cli", "iptexplain.__main__", "iptexplain"),
)

# Upward imports that are known and named: (importing module or package, imported module).
# Each is design debt with its reason, not a pattern to follow.
KNOWN_UPWARD: set[tuple[str, str]] = set()

# Function-level imports of iptexplain that are designed laziness: (module, imported module).
LAZY = {
    # a listing / an nft ruleset is read only when the input is one (patterns, grammar: ~25/100 ms)
    ("iptexplain.parse", "iptexplain.parse.listing"),
    ("iptexplain.parse", "iptexplain.parse.listing_deferred"),
    ("iptexplain.parse", "iptexplain.nft.reader"),
    ("iptexplain.parse", "iptexplain.nft.json_reader"),
    ("iptexplain.parse", "iptexplain.nft.deferred"),
    # nft's model and expression classes (~10 ms of imports, dataclasses) only where nft rules
    # are: pieces with nft tables to join, text that may be nft's JSON, nft rules' host evidence
    ("iptexplain.parse.combine", "iptexplain.nft.mixed"),
    ("iptexplain.parse.detect", "iptexplain.nft.json_text"),
    ("iptexplain.host.evidence", "iptexplain.host.nft_evidence"),
    # the tools' rule shapes fill in what a listing hid: only for such a listing
    ("iptexplain.netfilter.tracer", "iptexplain.parse.toolshapes"),
    # the live reader (subprocess, python-iptables) and the Docker API client (http.client, ssl)
    # only for a live host or a snapshot: every file input asks is_snapshot()
    ("iptexplain.inputs.snapshot", "iptexplain.inputs.live"),
    ("iptexplain.inputs.snapshot", "iptexplain.inputs.docker_api"),
    ("iptexplain.inputs.sources", "iptexplain.inputs.live"),
    ("iptexplain.inputs.live", "iptexplain.inputs.docker_api"),
}
# The CLI imports its commands' modules inside them: `iptexplain --help` loads neither the
# parser nor rich.  Its options' checks (cli_options.py, imported by cli.py at its top) likewise.
LAZY_MODULES = {"iptexplain.cli", "iptexplain.cli_options"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> int:
    best = (-1, -1)  # (prefix length, layer)
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best[0]:
                best = (len(p), i)
    assert best[1] >= 0, f"{module} is in no layer of {__file__}"
    return best[1]


def _imports(tree: ast.Module, module: str):
    """(imported module, line, inside a function?) of every iptexplain import."""
    def walk(node: ast.AST, in_func: bool):
        for child in ast.iter_child_nodes(node):
            f = in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                for a in child.names:
                    if a.name.startswith("iptexplain"):
                        yield a.name, child.lineno, in_func
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                if child.module.startswith("iptexplain"):
                    for a in child.names:  # `from iptexplain.inputs import live` names a module
                        sub = f"{child.module}.{a.name}"
                        p = PACKAGE.parent / sub.replace(".", "/")
                        yield (sub if p.with_suffix(".py").exists() or p.is_dir() else child.module), \
                            child.lineno, in_func
            else:
                yield from walk(child, f)
    yield from walk(tree, False)


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_imports_run_down_the_layers_and_sit_at_the_top(path: Path) -> None:
    module = _module_name(path)
    own = _layer(module)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    problems = []
    for target, line, in_func in _imports(tree, module):
        where = f"{path.relative_to(PACKAGE.parent)}:{line}"
        if in_func and module not in LAZY_MODULES and (module, target) not in LAZY:
            problems.append(f"{where}: `{target}' imported inside a function: import it at the top "
                            "(a cycle is a design question), or name it in LAZY with its reason")
        if not in_func and _layer(target) > own and not any(
                (module == m or module.startswith(m + ".")) and (target == t or target.startswith(t + "."))
                for m, t in KNOWN_UPWARD):
            problems.append(f"{where}: {module} (layer {own}) imports {target} (layer {_layer(target)}), "
                            "a layer above it")
    assert not problems, "\n".join(problems)


def test_the_layer_table_knows_every_package() -> None:
    """A new package gets its place in the layers (and in docs/architecture.md)."""
    for path in MODULES:
        _layer(_module_name(path))


def test_core_imports_nothing_above_it() -> None:
    for path in (PACKAGE / "core").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for target, line, _ in _imports(tree, _module_name(path)):
            assert target.startswith(("iptexplain.core", "iptexplain.numbers")), \
                f"{path.name}:{line}: core imports {target}"
