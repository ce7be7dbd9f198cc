"""``python -m api.cli`` runs the command line (the tests use it with the venv's interpreter)."""

from api.cli import main

main()
