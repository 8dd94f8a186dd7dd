"""``python -m bmfleet_agent``."""

import sys

from bmfleet_agent.cli import main

sys.exit(main())
