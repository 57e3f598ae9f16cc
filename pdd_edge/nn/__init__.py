"""Building blocks of PDD above the zoo: pruning a masked network, the MACs and latency constraints,
and the distillation loss. The channel masks live in `zoo.masks`, beside the prunable-model
protocol they gate, because the traced zoo models install them themselves."""
