"""``python -m trader_api.backup``: same as ``trader-backup``."""

import sys

from trader_api.backup.cli import main

sys.exit(main())
