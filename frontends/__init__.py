"""ncnnc.frontends."""
