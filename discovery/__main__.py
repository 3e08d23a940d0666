"""`python -m discovery` is the `wayfinder` command."""

import sys

from .cli import main

sys.exit(main())
