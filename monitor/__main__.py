"""``python -m monitor``: the tosmon command."""

from monitor.cli import main

main()
