"""ncnnc.backends."""
