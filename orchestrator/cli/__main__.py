"""``python -m orchestrator.cli``: the same as the ``swarmpod`` command."""

import sys

from ._main import main

sys.exit(main())
