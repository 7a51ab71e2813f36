"""``python -m traderbot_operator.plugin``: ``kubectl-traderbot`` (what the krew shim runs)."""

import sys

from traderbot_operator.plugin.cli import main

sys.exit(main())
