"""``kubectl traderbot``: the kubectl plugin for people who run TraderBots.

Layout (the operator's own rule, desired state as data): ``status``,
``manifests`` and ``bundle`` are pure (dicts in, views, bodies and files out,
tested without a server); ``client`` is the plugin's only module that talks to
the Kubernetes API; ``cli`` parses the command line and wires the two.
"""
