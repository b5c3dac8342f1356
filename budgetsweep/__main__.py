"""`python -m budgetsweep COMMAND ...`, the same as the `budgetsweep` console script."""

import sys

from .cli import main

sys.exit(main())
