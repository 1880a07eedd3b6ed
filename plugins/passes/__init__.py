"""ncnnc.plugins.passes."""
