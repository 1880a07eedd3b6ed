"""`python -m ncnnc` runs the command-line interface."""

from ncnnc.core.cli import entry

entry()
