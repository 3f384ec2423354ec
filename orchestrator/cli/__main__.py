"""``python -m orchestrator.cli``: the same as the ``swarmpod`` command."""

import sys

from . import main

sys.exit(main())
