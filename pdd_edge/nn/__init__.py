"""Building blocks of PDD: differentiable channel masks and the distillation loss."""
