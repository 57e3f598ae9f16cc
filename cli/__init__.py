"""The pdd-edge command line (installed as `pdd_edge.cli`). Thin: parse, call the library, print."""
