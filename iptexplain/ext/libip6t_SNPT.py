"""SNPT: stateless IPv6 source prefix translation, RFC 6296 (libip6t_SNPT, mangle)."""

from __future__ import annotations

from iptexplain.ext import register
from iptexplain.ext.libip6t_DNPT import Dnpt


@register
class Snpt(Dnpt):
    name = "SNPT"
