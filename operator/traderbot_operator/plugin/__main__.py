"""``python -m traderbot_operator.plugin``: ``kubectl-traderbot`` (what the krew shim runs)."""

import sys

from traderbot_operator.plugin.cli import main

# NB: guarded, so importing every module (the image's smoke test does) runs nothing.
if __name__ == "__main__":
    sys.exit(main())
