"""Built-in device targets: TOML data files, installed as package data of pdd_edge.targets.

The loader is pdd_edge.profiling.targets; this package only locates the files.
"""
