"""``python -m creditops``: the same as the ``creditops`` console script."""

from creditops.cli.app import main

main()
