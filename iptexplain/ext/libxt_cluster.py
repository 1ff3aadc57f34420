"""cluster: is this node responsible for the packet's hash bucket (libxt_cluster)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Opt, Match, types

NODES_MAX = 32


@register
class Cluster(Match):
    name = "cluster"
    options = (
        Opt("total_nodes", "--cluster-total-nodes", types.uint32, invert=False),
        Opt("local_node", "--cluster-local-node", types.uint32),
        Opt("local_nodemask", "--cluster-local-nodemask", types.uint32),
        Opt("hash_seed", "--cluster-hash-seed", types.uint32, invert=False),
    )

    def check(self) -> None:
        for k, f in (("total_nodes", "--cluster-total-nodes"), ("hash_seed", "--cluster-hash-seed")):
            if not self.has(k):
                raise OptionError(f"cluster match: {f} is required")
        if self.has("local_node") == self.has("local_nodemask"):
            raise OptionError("cluster match: `--cluster-local-node' or`--cluster-local-nodemask' is missing")
        total = self.value("total_nodes")
        if not 1 <= total <= NODES_MAX:
            raise OptionError(f"cluster match: --cluster-total-nodes must be 1-{NODES_MAX}")
        if self.node_mask >= (1 << total):
            raise OptionError("cluster match: `--cluster-local-node' must be <= `--cluster-total-nodes'")

    @property
    def node_mask(self) -> int:
        if self.has("local_node"):
            return 1 << (self.value("local_node") - 1)
        return self.value("local_nodemask")

    @property
    def inverted(self) -> bool:
        return bool((self.get("local_node") or self.get("local_nodemask")).invert)  # type: ignore[union-attr]

    def save_args(self) -> list[str]:
        return ((["!"] if self.inverted else []) + ["--cluster-local-nodemask", f"0x{self.node_mask:08x}",
                "--cluster-total-nodes", str(self.value("total_nodes")),
                "--cluster-hash-seed", f"0x{self.value('hash_seed'):08x}"])

    def decide(self, pkts, ctx):
        """Which node of the cluster handles the packet: a hash of its source address the
        trace does not compute -- a fork with this node's share as its probability."""
        total = self.value("total_nodes")
        mine = bin(self.node_mask & ((1 << total) - 1)).count("1")
        p = mine / total if total else None
        if self.inverted and p is not None:
            p = 1 - p
        return Decision.fork(pkts, f"cluster node mask 0x{self.node_mask:x} of {total}",
                             f"{'not ' if self.inverted else ''}handled by this node",
                             f"{'' if self.inverted else 'not '}handled by this node", p)

    # -- the -L face (cluster_print: " cluster [!]node_mask=0x%08x total_nodes=N hash_seed=0x%08x")
    listing_keywords = ("cluster",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return (f"cluster {'!' if self.inverted else ''}node_mask=0x{self.node_mask:08x} "
                f"total_nodes={self.value('total_nodes')} hash_seed=0x{self.value('hash_seed', 0):08x}")

    @classmethod
    def from_listing(cls, tail) -> "Cluster":
        tail.expect("cluster")
        mask = tail.take()
        inv = mask.startswith("!")
        mask = mask.lstrip("!")
        total, seed = tail.take(), tail.take()
        if not (mask.startswith("node_mask=") and total.startswith("total_nodes=") and seed.startswith("hash_seed=")):
            raise OptionError("not a cluster match")
        opts = [("--cluster-total-nodes", False, [total.split("=", 1)[1]]),
                ("--cluster-local-nodemask", inv, [mask.split("=", 1)[1]]),
                ("--cluster-hash-seed", False, [seed.split("=", 1)[1]])]
        return cls.build(opts, spelled="cluster")  # type: ignore[return-value]
