"""Per-target reports of a run directory, and the deployment gate. Torch-free."""
