"""``python -m bigbird_core.cli``: the ``bigbird`` command."""

import sys

from . import main

sys.exit(main())
