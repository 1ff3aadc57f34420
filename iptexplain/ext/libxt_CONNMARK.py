"""CONNMARK: set the connection's mark, or copy it to/from the packet mark (libxt_CONNMARK).

Every spelling reduces to one of three kernel operations (``xt_connmark_tginfo2``):

* set:     ``ctmark = (ctmark & ~ctmask) ^ ctmark_value``  (saved as ``--set-xmark v/m``);
* save:    ``ctmark = (ctmark & ~ctmask) ^ (nfmark & nfmask)``;
* restore: ``nfmark = (nfmark & ~nfmask) ^ (ctmark & ctmask)``;

with optional shifts.  The packet continues to the next rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from iptexplain.core.context import CONTINUE, Effect
from iptexplain.core.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, Target, parse_markmask, parse_uint, types
from iptexplain.ext.libxt_MARK import MarkTarget

FULL = 0xFFFFFFFF
OPS = ("set_xmark", "set_mark", "and_mark", "or_mark", "xor_mark", "save_mark", "restore_mark")


@dataclass(frozen=True, slots=True)
class ConnmarkOp:
    mode: str  # "set", "save" or "restore"
    ctmark: int  # the value of a set
    ctmask: int
    nfmask: int
    shift: tuple[str, int] | None  # ("left"|"right", bits)


@register
class ConnmarkTarget(Target):
    name = "CONNMARK"
    terminal = False
    # MARK's ways of setting a value (on the connection's mark here), then CONNMARK's own.
    options = MarkTarget.options + (
        Opt("save_mark", "--save-mark", types.flag, invert=False),
        Opt("restore_mark", "--restore-mark", types.flag, invert=False),
        Opt("left_shift", "--left-shift-mark", types.uint8, invert=False),
        Opt("right_shift", "--right-shift-mark", types.uint8, invert=False),
        Opt("ctmask", "--ctmask", types.uint32, invert=False),
        Opt("nfmask", "--nfmask", types.uint32, invert=False),
        Opt("mask", "--mask", types.uint32, invert=False),
    )

    def check(self) -> None:
        ops = [k for k in OPS if self.has(k)]
        if not ops:
            raise OptionError("CONNMARK target: No operation specified")
        if len(ops) > 1:
            raise OptionError("CONNMARK target: only one operation may be given")
        if self.has("mask") and (self.has("ctmask") or self.has("nfmask")):
            raise OptionError("CONNMARK target: --mask cannot be combined with --ctmask/--nfmask")
        for k in ("left_shift", "right_shift"):
            if self.value(k, 0) > 32:
                raise OptionError("CONNMARK target: shift must be 0-32")

    @property
    def op(self) -> ConnmarkOp:
        """The kernel operation the options amount to (options applied in the order given)."""
        mode, ctmark, ctmask, nfmask = "set", 0, FULL, FULL
        for key, v in self.values:
            if key == "set_xmark":
                mode, (ctmark, ctmask) = "set", v.value
            elif key == "set_mark":
                mode, ctmark, ctmask = "set", v.value[0], v.value[0] | v.value[1]
            elif key == "and_mark":
                mode, ctmark, ctmask = "set", 0, FULL ^ v.value
            elif key == "or_mark":
                mode, ctmark, ctmask = "set", v.value, v.value
            elif key == "xor_mark":
                mode, ctmark, ctmask = "set", v.value, 0
            elif key == "save_mark":
                mode = "save"
            elif key == "restore_mark":
                mode = "restore"
            elif key == "mask":
                nfmask = ctmask = v.value
            elif key == "ctmask":
                ctmask = v.value
            elif key == "nfmask":
                nfmask = v.value
        shift = None
        if self.value("left_shift"):
            shift = ("left", self.value("left_shift"))
        elif self.value("right_shift"):
            shift = ("right", self.value("right_shift"))
        return ConnmarkOp(mode, ctmark, ctmask, nfmask, shift)

    def save_args(self) -> list[str]:
        op = self.op
        if op.mode == "set":
            out = ["--set-xmark", f"0x{op.ctmark:x}/0x{op.ctmask:x}"]
        else:
            out = [f"--{op.mode}-mark", "--nfmask", f"0x{op.nfmask:x}", "--ctmask", f"0x{op.ctmask:x}"]
        if op.shift is not None:
            out += [f"--{op.shift[0]}-shift-mark", str(op.shift[1])]
        return out

    def apply(self, pkts, ctx):
        """Set the connection's mark, or copy it to/from the packet's mark; continue.
        Later ``-m connmark`` / ``-m mark`` rules see the result."""
        op = self.op

        def shifted(v: int) -> int:
            if op.shift is None:
                return v
            d, n = op.shift
            return ((v << n) if d == "left" else (v >> n)) & FULL

        if op.mode == "set":
            new = (pkts.connmark & ~op.ctmask & FULL) ^ op.ctmark
            field, old = "connmark", pkts.connmark
        elif op.mode == "save":
            new = (pkts.connmark & ~op.ctmask & FULL) ^ (shifted(pkts.mark & op.nfmask) & op.ctmask)
            field, old = "connmark", pkts.connmark
        else:
            new = (pkts.mark & ~op.nfmask & FULL) ^ (shifted(pkts.connmark & op.ctmask) & op.nfmask)
            field, old = "mark", pkts.mark
        if new == old:
            return Effect(CONTINUE, note=f"{field} stays 0x{new:x}")
        return Effect(CONTINUE, pkts.copy(**{field: new}), [(field, f"0x{old:x}", f"0x{new:x}")])

    # -- the -L face (connmark_tg_print) -------------------------------------------------------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        op = self.op
        if op.mode == "set":
            m, k = op.ctmark, op.ctmask
            if m == 0:
                return f"CONNMARK and 0x{FULL ^ k:x}"
            if m == k:
                return f"CONNMARK or 0x{m:x}"
            if k == 0:
                return f"CONNMARK xor 0x{m:x}"
            if k == FULL:
                return f"CONNMARK set 0x{m:x}"
            return f"CONNMARK xset 0x{m:x}/0x{k:x}"
        if op.ctmask == FULL and op.nfmask == FULL:
            return f"CONNMARK {op.mode}"
        if op.ctmask == op.nfmask:
            return f"CONNMARK {op.mode} mask 0x{op.nfmask:x}"
        if op.mode == "save":
            return f"CONNMARK save nfmask 0x{op.nfmask:x} ctmask ~0x{op.ctmask:x}"
        return f"CONNMARK restore ctmask 0x{op.ctmask:x} nfmask ~0x{op.nfmask:x}"

    @classmethod
    def from_listing(cls, tail) -> "ConnmarkTarget":
        tail.expect("CONNMARK")
        mode = tail.take()
        if mode in ("save", "restore"):
            opts: list = [(f"--{mode}-mark", False, [])]
            while tail.peek() in ("mask", "nfmask", "ctmask"):
                key = tail.take()
                opts.append((f"--{key}", False, [tail.take().lstrip("~")]))
            return cls.build(opts, spelled="CONNMARK")  # type: ignore[return-value]
        arg = tail.take()
        if mode == "xset":
            value, mask = parse_markmask(arg)
        else:
            v = parse_uint(arg)
            ops = {"and": (0, FULL ^ v), "or": (v, v), "xor": (v, 0), "set": (v, FULL)}
            if mode not in ops:
                raise OptionError(f"CONNMARK: unknown operation `{mode}'")
            value, mask = ops[mode]
        return cls.build([("--set-xmark", False, [f"0x{value:x}/0x{mask:x}"])], spelled="CONNMARK")  # type: ignore[return-value]
