"""Pure desired-state builders: TraderBot model in, manifest dicts out (one module per child kind)."""
