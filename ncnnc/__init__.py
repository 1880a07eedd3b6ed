"""ncnnc: a plugin-based graph compiler that turns trained networks into fast int8 ncnn models."""

__version__ = "0.1.0"
