"""Where a trace's input comes from -- a file, stdin, a bundled example, a snapshot, the live
host -- each resolved by :mod:`.sources` to the same ruleset + host + sets (``TraceInput``), so
that ``parse/`` stays text -> rule graph.  :mod:`.live` reads a running host (read-only), through
:mod:`.iptc_reader` or the iptables commands, :mod:`.docker_api` names its containers,
:mod:`.snapshot` keeps what was read, :mod:`.ipset` reads ``ipset save``."""
