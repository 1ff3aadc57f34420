"""The bottom layer, what every other layer speaks: sets of packets and the decisions over them
(:mod:`.packets`), what a match may ask and a target answers (:mod:`.context`), addresses
(:mod:`.addr`), protocol tables (:mod:`.protocols`) and the errors of bad input (:mod:`.errors`).

It imports nothing else of iptexplain, so ``ext/``, ``parse/`` and ``netfilter/`` import it at
the top of their files.
"""
