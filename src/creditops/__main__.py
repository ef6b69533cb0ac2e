"""``python -m creditops``: the same as the ``creditops`` console script."""

from creditops.cli import main

main()
