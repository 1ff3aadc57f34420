"""iptexplain: what netfilter does to a packet, and why.

Layers, data flowing one way: text -> rule graph (``iptexplain.graph``) -> trace
(``iptexplain.netfilter``) -> view (``iptexplain.render``).  Match and target knowledge lives in
one module per extension under ``iptexplain.ext``, the way iptables' ``extensions/libxt_*.c`` do.
"""

__version__ = "0.1.0"
