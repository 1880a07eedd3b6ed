"""The ``ncnnc`` command line: one subcommand per module in :mod:`ncnnc.core.commands`.

User errors (:class:`~ncnnc.core.errors.NcnncError`) print one line and exit with status 2;
nothing else is printed, no traceback.  A catchable signal (SIGINT, SIGTERM, SIGHUP ...) removes the
command's temporary output files and ends it with one line and status 128 + the signal's number.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
import traceback

from ncnnc.core.errors import NcnncError

COMMANDS = {
    "compile": "optimize, calibrate and quantize a model into an int8 ncnn model in one go",
    "optimize": "fuse and eliminate layers of an ncnn model (as ncnnoptimize)",
    "table": "make an int8 calibration table (ncnn2table's arguments)",
    "calibrate": "make an int8 calibration table (same as 'table', with --options)",
    "quantize": "quantize an fp32 ncnn model with a calibration table (as ncnn2int8)",
    "eval": "compare an fp32 model and its int8 version on images: top-1/top-5, agreement, per-layer cosine",
    "run": "run a model on images or .npy tensors (numpy backend, the real ncnn runtime or native code)",
    "convert": "convert a model (ncnn, Caffe, ONNX) to an ncnn .param/.bin",
    "inspect": "show a model's layers, blob shapes, weight bytes per storage and MACs",
    "plugins": "list every registered plugin item and the package it came from",
}
"""Subcommands (modules of :mod:`ncnnc.core.commands`) and their one-line help, in the order ``--help``
lists them.  The help lives here so that listing the commands imports none of them."""


ONE_BLAS_THREAD_COMMANDS = ("table", "calibrate")
"""Commands whose numpy work runs one BLAS thread per process (their parallel workers are processes):
OpenBLAS is started with one thread (``OPENBLAS_NUM_THREADS``, unless the user set it), which also
shortens numpy's start-up by a twentieth of a second."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``ncnnc compile: error: ... (see ncnnc compile --help)``, status 2."""

    def error(self, message: str):  # type: ignore[override]
        """Print the error on one line and exit with status 2 (no usage block)."""
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every subcommand; with ``command``, only that subcommand's module is
    imported and given its arguments (``""``: none).  The others are listed by ``--help`` but not built,
    so start-up imports only what the command needs."""
    from ncnnc import __version__

    parser = Parser(
        prog="ncnnc", description="ncnnc: compile trained networks into fast int8 ncnn models.", allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"ncnnc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        # allow_abbrev=False everywhere: `--targ` must not silently mean `--target` or `--target-cos`
        p = sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        if command in (None, name):
            _add_command_arguments(p, importlib.import_module(f"ncnnc.core.commands.{name}"))
    return parser


def _add_command_arguments(p: argparse.ArgumentParser, module: object) -> None:
    module.add_arguments(p)  # type: ignore[attr-defined]
    p.add_argument("--max-memory", metavar="SIZE",
                   help="refuse work whose shapes imply more memory than this (e.g. 4G; default: half "
                        "of this machine's memory, or $NCNNC_MAX_MEMORY)")
    p.add_argument("--debug", action="store_true", help="on an error, also print the traceback")
    p.set_defaults(_run=module.run)  # type: ignore[attr-defined]


def command_word(words: list[str]) -> str | None:
    """The subcommand ``words`` (the arguments after ``ncnnc``) name: the first word that is not an
    option, if it is a command."""
    first = next((w for w in words if not w.startswith("-")), None)
    return first if first in COMMANDS else None


class Interrupted(BaseException):
    """A catchable signal other than SIGINT arrived (raised by the CLI's handler, like KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


CAUGHT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                  signal.SIGALRM)
"""Signals whose arrival removes the command's temporary files and ends it with status 128 + number."""


def _on_signal(signum: int, frame: object) -> None:
    from ncnnc.core.fileio import remove_temporaries

    remove_temporaries()  # first: the exception may surface anywhere, even inside a cleanup
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _on_signal) for s in CAUGHT_SIGNALS} if in_main_thread else {}
    words = sys.argv[1:] if argv is None else argv
    word = command_word(words)
    command = f"ncnnc {word}" if word else "ncnnc"
    if word in ONE_BLAS_THREAD_COMMANDS and "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Interrupted as e:
        from ncnnc.core.fileio import remove_temporaries

        remove_temporaries()
        print(f"{command}: stopped by {signal.Signals(e.signum).name}", file=sys.stderr)
        return 128 + e.signum
    finally:
        from ncnnc.core.resources import set_memory_limit

        set_memory_limit(None)
        for s, handler in previous.items():
            signal.signal(s, handler)


def entry() -> None:
    """The ``ncnnc`` program (console script and ``python -m ncnnc``): :func:`main`, then the process ends
    without the interpreter's teardown.  Freeing every module's objects (numpy, Pillow, onnx, llvmlite)
    takes a few tens of milliseconds and does nothing a finished command needs: its files are written and
    closed, its worker processes stopped, and ncnnc registers no exit handlers."""
    status = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader that went away, a closed stream
            stream.flush()
    os._exit(status)


def _main(argv: list[str] | None) -> int:
    parser = build_parser(command_word(sys.argv[1:] if argv is None else argv) or "")
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        if getattr(args, "max_memory", None):
            from ncnnc.core.resources import set_memory_limit

            set_memory_limit(args.max_memory)
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
