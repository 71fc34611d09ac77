"""``python -m cubehub.cli``."""

import sys

from cubehub.cli import main

sys.exit(main())
