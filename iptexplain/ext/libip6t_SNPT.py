"""SNPT: stateless IPv6 source prefix translation, RFC 6296 (libip6t_SNPT, mangle).

The same translation as DNPT (its options, its -L face, the rewrite), made to the source address."""

from __future__ import annotations

from iptexplain.ext import register
from iptexplain.ext.libip6t_DNPT import Dnpt


@register
class Snpt(Dnpt):
    name = "SNPT"
    address = "src"
