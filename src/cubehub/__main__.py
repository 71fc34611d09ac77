"""``python -m cubehub``: the ``cubehub`` command, by whichever Python runs it."""

import sys

from cubehub.cli import main

# Guarded: worker processes of a local cluster import the main module again (as
# ``__mp_main__``), and must not run the command once each.
if __name__ == "__main__":
    sys.exit(main(prog_name="cubehub"))
