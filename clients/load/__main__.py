"""`python -m clients.load`: the same as the `mixtral-load` console script."""

import sys

from clients.load.cli import main

sys.exit(main())
