"""Netfilter's pipeline: hooks and their tables in priority order, conntrack, NAT, routing.

The tracer walks a described flow through it and produces a :class:`~.trace.Trace`.
"""
