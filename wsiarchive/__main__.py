"""`python -m wsiarchive` is the `wsiarchive` command."""

import sys

from wsiarchive.cli import main

sys.exit(main())
