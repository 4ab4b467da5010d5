"""`python -m spiral.bench run|report ...`: the bench commands without the rest of the CLI."""

import sys

from spiral.bench.cli import main

sys.exit(main())
