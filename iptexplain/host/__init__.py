"""The host around the ruleset: its interfaces, addresses, routes, sysctls and containers
(:mod:`.model`), what the ruleset itself says about them (:mod:`.infer`), and the readers of
``ip``/``sysctl`` output and of the host's JSON form (:mod:`.readers`)."""
