"""The ``ncnnc`` command line: one subcommand per module in :mod:`ncnnc.core.commands`.

User errors (:class:`~ncnnc.core.errors.NcnncError`) print one line and exit with status 2;
nothing else is printed, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from ncnnc.core.errors import NcnncError

COMMANDS = (
    "compile",
    "optimize",
    "table",
    "calibrate",
    "quantize",
    "eval",
    "run",
    "convert",
    "inspect",
    "plugins",
)
"""Subcommand modules in :mod:`ncnnc.core.commands`, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from ncnnc import __version__

    parser = argparse.ArgumentParser(
        prog="ncnnc", description="ncnnc: compile trained networks into fast int8 ncnn models.", allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"ncnnc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for modname in COMMANDS:
        module = importlib.import_module(f"ncnnc.core.commands.{modname}")
        # allow_abbrev=False everywhere: `--targ` must not silently mean `--target` or `--target-cos`
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP, allow_abbrev=False)
        module.add_arguments(p)
        p.add_argument("--debug", action="store_true", help="on an error, also print the traceback")
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        status = int(args._run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at interpreter exit
        return status
    except BrokenPipeError:  # the reader went away (``ncnnc inspect ... | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except NcnncError as e:
        detail = getattr(e, "detail", "")  # a plugin's failure keeps its traceback
        if args.debug:
            print(detail or traceback.format_exc(), file=sys.stderr, end="")
        print(f"ncnnc {args.command}: error: {e}" + (" (--debug shows the traceback)" if detail and not args.debug
                                                     else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ncnnc {args.command}: interrupted", file=sys.stderr)
        return 130
