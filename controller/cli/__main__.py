"""``python -m controller.cli``: the same as the ``yurt`` executable."""

from controller.cli import main

main()
