"""``python -m demandloop`` runs the CLI."""

from demandloop.cli import main

main()
