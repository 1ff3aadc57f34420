"""The nft fixtures (``fixtures/nft/``): real rulesets as the kernel lists them.

Each fixture is built from its sources (``fixtures/nft/src/``, or an iptables-save fixture for
the iptables-nft side of a mixed host) loaded into a fresh private network namespace, in the
order given, with the real ``nft -f`` / ``iptables-nft-restore``; the kernel then lists the
whole ruleset back: ``NAME.nft`` is ``nft list ruleset``, ``NAME.json`` is
``nft -j list ruleset``.  So the text and the JSON are what a user pastes or pipes from a host
holding that ruleset, not what a tool wrote, and the two describe the same loaded ruleset.

The load order is part of a fixture: at equal priority the base chain registered last runs
first (``shared/netfilter-facts.md``), so a mixed host lists its tools in the order they
started.  The kernel lab loads a fixture the same way (:func:`load_script`).

Run as root to regenerate (every namespace is gone when its command ends)::

    python tests/nft_fixtures.py            # all
    python tests/nft_fixtures.py NAME ...   # some

The module is standard library only and does not import iptexplain.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from typing import Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures")
NFT_DIR = os.path.join(FIXTURES, "nft")

LOADERS = {
    "nft": ["nft", "-f", "-"],
    "iptables-nft": ["iptables-nft-restore"],
    "ip6tables-nft": ["ip6tables-nft-restore"],
}
"""How a source is loaded: its text on the loader's stdin."""


@dataclass(frozen=True)
class Source:
    """One piece of a fixture: a file (relative to ``fixtures/``) and the tool that loads it."""

    loader: str
    path: str

    def text(self) -> str:
        with open(os.path.join(FIXTURES, self.path), encoding="utf-8") as f:
            return f.read()


@dataclass(frozen=True)
class NftFixture:
    """A fixture: its name (``fixtures/nft/NAME.nft`` / ``.json``) and sources in load order."""

    name: str
    sources: tuple[Source, ...]
    about: str

    @property
    def text_path(self) -> str:
        return os.path.join(NFT_DIR, f"{self.name}.nft")

    @property
    def json_path(self) -> str:
        return os.path.join(NFT_DIR, f"{self.name}.json")

    @property
    def native_only(self) -> bool:
        """Loaded by ``nft -f`` alone: its listing loads back as it is."""
        return all(s.loader == "nft" for s in self.sources)


NFT_FIXTURES: tuple[NftFixture, ...] = (
    NftFixture("firewalld-nftables-backend",
               (Source("nft", "nft/src/firewalld-nftables-backend.nft"),),
               "firewalld 1.3.3, FirewallBackend=nftables: table inet firewalld"),
    NftFixture("kube-proxy-nftables",
               (Source("nft", "nft/src/kube-proxy-TestOverallNFTablesRules.v4.nft"),),
               "kube-proxy nftables mode: table ip kube-proxy of TestOverallNFTablesRules"),
    NftFixture("docker29-nftables",
               (Source("nft", "nft/src/moby29-nftablesdoc-usernet-portmap.v4.nft"),),
               "Docker 29 firewall-backend=nftables: table ip docker-bridges, port 8080 -> 192.0.2.2:80"),
    NftFixture("docker29-nftables-ipv6",
               (Source("nft", "nft/src/moby29-nftabler-TestNftabler-icc-masq-nat.v6.nft"),),
               "Docker 29 firewall-backend=nftables, IPv6: table ip6 docker-bridges, 8080 -> [fd49:efd7:54aa::1]:80"),
    NftFixture("inet-server-sets",
               (Source("nft", "nft/src/inet-server-sets.nft"),),
               "a hand-written inet server: sets, an interval set, a vmap, limits, reject"),
    NftFixture("inet-server-ratelimit",
               (Source("nft", "nft/inet-server.nft"),),
               "nft-core's hand-written inet server: a ct state vmap, an interval set, a dynamic "
               "blocklist filled by a rate limit, log"),
    NftFixture("mixed-docker-lxd",
               (Source("iptables-nft", "seed-docker.v4.save"),
                Source("nft", "nft/src/lxd-lxdbr0.v4.nft")),
               "Docker's iptables-nft rules (FORWARD policy DROP) + LXD's table inet lxd, LXD started last"),
    NftFixture("iptables-nft-firewalld",
               (Source("iptables-nft", "firewalld-iptables-backend.v4.save"),
                Source("ip6tables-nft", "firewalld-iptables-backend.v6.save")),
               "an iptables-nft host only (firewalld's iptables backend): what nft lists of xtables tables"),
)


def fixture(name: str) -> NftFixture:
    for f in NFT_FIXTURES:
        if f.name == name:
            return f
    raise KeyError(name)


def load_steps(fx: NftFixture) -> list[tuple[list[str], str]]:
    """``[(argv, stdin text), …]`` that load the fixture's sources, in order."""
    return [(list(LOADERS[s.loader]), s.text()) for s in fx.sources]


def regenerate(fx: NftFixture) -> None:
    """Load the fixture in a fresh namespace and write the kernel's two listings."""
    script = []
    payloads = []
    for i, (argv, text) in enumerate(load_steps(fx)):
        payloads.append(text)
        script.append(f'printf %s "$P{i}" | {shlex.join(argv)}')
    script.append("nft list ruleset > \"$OUT.nft\"")
    script.append("nft -j list ruleset > \"$OUT.json\"")
    env = dict(os.environ, OUT=os.path.join(NFT_DIR, fx.name))
    env.update({f"P{i}": t for i, t in enumerate(payloads)})
    subprocess.run(["unshare", "-n", "sh", "-ec", "\n".join(script)], env=env, check=True)


def main(argv: Sequence[str]) -> int:
    chosen = [fixture(n) for n in argv] if argv else list(NFT_FIXTURES)
    for fx in chosen:
        regenerate(fx)
        print(f"{fx.name}: {os.path.relpath(fx.text_path, ROOT)}, {os.path.relpath(fx.json_path, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
