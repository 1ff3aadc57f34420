"""nftables: ``nft list ruleset`` text read into the rule graph, traced with the iptables tables.

:mod:`.model` (tables, base chains with hook and priority, rules, sets and maps),
:mod:`.reader` (the text, with the grammar in ``grammar.lark``), :mod:`.expr` (one module per
expression family, registered in one place) and :mod:`.hooks` (native base chains as rows of
the kernel's hook table).
"""
