"""The e2e tier: the whole stack on real pods (see docs/e2e.md).

NB: a package, so its fixtures can be package-scoped: the cluster with the real
node stops after the last e2e test instead of running through the other tiers.
"""
