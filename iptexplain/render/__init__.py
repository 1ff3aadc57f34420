"""Views over a rule graph or a trace.  None of them computes netfilter semantics."""
