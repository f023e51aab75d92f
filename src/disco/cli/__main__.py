"""`python -m disco.cli`: the `disco` command."""

import sys

from disco.cli import main

sys.exit(main())
