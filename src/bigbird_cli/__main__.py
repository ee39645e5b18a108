"""``python -m bigbird_cli``: the ``bigbird`` command."""

from . import run

run()
