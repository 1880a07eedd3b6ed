"""ncnnc.core."""
