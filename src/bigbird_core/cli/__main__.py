"""``python -m bigbird_core.cli``: the ``bigbird`` command."""

from . import run

run()
