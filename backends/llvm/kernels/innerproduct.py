"""innerproduct kernels (being written)."""
