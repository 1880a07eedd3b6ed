"""One module per ``ncnnc`` subcommand; each defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``."""
