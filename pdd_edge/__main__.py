"""`python -m pdd_edge ...` is the `pdd-edge` command."""

from pdd_edge.cli.app import main

main()
