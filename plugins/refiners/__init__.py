"""Built-in refine steps (bias correction, learned rounding): see :mod:`ncnnc.core.refine`."""
