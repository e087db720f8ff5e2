"""``python -m odeion_archive``: the command line."""

import sys

from odeion_archive._cli import main

sys.exit(main())
