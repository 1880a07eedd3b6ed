"""ncnnc.plugins.calibrators."""
