"""elementwise kernels (being written)."""
