"""One module per ``ncnnc`` subcommand (listed with its help in :data:`ncnnc.core.cli.COMMANDS`); each
defines ``add_arguments(parser)`` and ``run(args) -> int``."""
