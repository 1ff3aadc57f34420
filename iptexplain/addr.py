"""Addresses, masks and interface names as netfilter compares them.

Addresses are kept as integers with a mask (not ``ipaddress`` objects) because the parser builds
hundreds of thousands of them on a kube-proxy dump and the tracer works on integer ranges.
Non-contiguous masks (``-s 10.0.0.0/255.0.255.0``) are legal in iptables and kept exactly.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from functools import lru_cache

from iptexplain.errors import OptionError
from iptexplain.numbers import is_decimal, shown

V4_BITS = 32
V6_BITS = 128


def _bits(family: int) -> int:
    return V4_BITS if family == 4 else V6_BITS


@dataclass(frozen=True, slots=True)
class Address:
    """An address with its mask, as in ``struct ipt_ip``: ``value`` is already masked."""

    family: int
    value: int
    mask: int

    @property
    def prefixlen(self) -> int | None:
        """The CIDR prefix length, or None for a non-contiguous mask."""
        bits = _bits(self.family)
        full = (1 << bits) - 1
        inverted = full ^ self.mask
        if inverted & (inverted + 1):
            return None
        return bits - inverted.bit_length()

    @property
    def is_any(self) -> bool:
        return self.mask == 0

    def first(self) -> int:
        return self.value

    def last(self) -> int:
        """Highest address covered (only meaningful for a contiguous mask)."""
        full = (1 << _bits(self.family)) - 1
        return self.value | (full ^ self.mask)

    def contains(self, addr: int) -> bool:
        return (addr & self.mask) == self.value

    def host_str(self) -> str:
        return int_to_ip(self.value, self.family)

    def __str__(self) -> str:
        """The form iptables-save prints: ``a.b.c.d/len`` (``/mask`` when not contiguous)."""
        plen = self.prefixlen
        if plen is None:
            return f"{self.host_str()}/{int_to_ip(self.mask, self.family)}"
        return f"{self.host_str()}/{plen}"

    def listing_str(self) -> str:
        """The form ``iptables -nL`` prints: no ``/32`` for a host, ``0.0.0.0/0`` for any."""
        plen = self.prefixlen
        if plen == _bits(self.family):
            return self.host_str()
        if self.family == 6 and plen == 0:
            return "::/0"
        return str(self)


def int_to_ip(value: int, family: int) -> str:
    if family == 4:
        if 0 <= value <= 0xFFFFFFFF:
            return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
        return str(ipaddress.IPv4Address(value))
    # inet_ntop's spelling, which iptables prints: IPv4-mapped addresses keep a dotted quad
    # (``::ffff:0.0.0.0``) where Python's ipaddress would write ``::ffff:0:0``.
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


def _dotted_quad(text: str) -> int | None:
    """A plain ``a.b.c.d`` as an integer, without ipaddress' cost (a kube-proxy dump holds
    tens of thousands of distinct addresses); None for anything else, which ipaddress judges.
    inet_aton also takes ``1.2``, ``0x1`` or ``010``: only text it prints back unchanged is
    the canonical dotted quad ipaddress accepts."""
    try:
        packed = socket.inet_aton(text)
    except (OSError, ValueError):
        return None
    if socket.inet_ntoa(packed) != text:
        return None
    return int.from_bytes(packed, "big")


@lru_cache(maxsize=8192)
def parse_ip(text: str, family: int | None = None) -> tuple[int, int]:
    """Parse one host address; returns (family, integer). Raises OptionError."""
    if family != 6:
        quad = _dotted_quad(text)
        if quad is not None:
            return 4, quad
    try:
        if ":" in text:
            if family == 4:
                raise ValueError
            return 6, int(ipaddress.IPv6Address(text))
        if family == 6:
            raise ValueError
        return 4, int(ipaddress.IPv4Address(text))
    except ValueError:
        raise OptionError(f"host/network `{text}' not found") from None


@lru_cache(maxsize=8192)
def parse_address(text: str, family: int | None = None) -> Address:
    """Parse ``-s``/``-d`` syntax: address, address/len, address/dotted-mask.

    Like iptables, the address is masked (``10.1.2.3/8`` becomes ``10.0.0.0/8``).
    """
    host, sep, mask_text = text.partition("/")
    fam, value = parse_ip(host, family)
    bits = _bits(fam)
    full = (1 << bits) - 1
    if not sep:
        mask = full
    elif is_decimal(mask_text):
        if len(mask_text) > 3 or int(mask_text) > bits:
            raise OptionError(f"invalid mask `{shown(mask_text)}' specified")
        plen = int(mask_text)
        mask = full ^ ((1 << (bits - plen)) - 1)
    else:
        try:
            mfam, mask = parse_ip(mask_text, fam)
        except OptionError:
            raise OptionError(f"invalid mask `{mask_text}' specified") from None
    return Address(fam, value & mask, mask)


def iface_matches(pattern: str, name: str) -> bool:
    """``-i eth+`` is a prefix match; otherwise names compare exactly (kernel ifname_compare)."""
    if pattern.endswith("+"):
        return name.startswith(pattern[:-1])
    return name == pattern


IFNAMSIZ = 16


def check_iface(text: str) -> str:
    if not text or len(text) >= IFNAMSIZ:
        raise OptionError(f"interface name `{text}' must be shorter than {IFNAMSIZ} characters")
    if any(c.isspace() or c in "/" for c in text):
        raise OptionError(f"invalid interface name `{text}'")
    return text
