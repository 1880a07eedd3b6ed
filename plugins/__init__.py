"""ncnnc.plugins."""
