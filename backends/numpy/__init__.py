"""ncnnc.backends.numpy."""
