"""One module per stage of the chain. Stages talk through files, never through live objects."""
