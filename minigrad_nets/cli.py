"""The ``minigrad-nets`` command: one subcommand per module in ``minigrad_nets.commands``."""
import argparse
import pkgutil
import sys
from importlib import import_module

from . import __version__, commands, threads


def build_parser():
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="minigrad-nets",
        description="Train and gradient-check the book's networks; run the chapter-6 experiments.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--threads", metavar="N", type=_threads_option,
                        help=f"BLAS threads for numpy: a count, or 'auto' (the default; also ${threads.ENV_VAR}): "
                             f"all cores while the machine is quiet, the cores other processes leave idle otherwise")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # shared helpers (argument types, data loading), not subcommands
            continue
        import_module(f"{commands.__name__}.{info.name}").register(subparsers)
    return parser


def _threads_option(text):
    """argparse type of --threads: a positive count or 'auto'."""
    try:
        return threads.parse(text, "--threads")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv=None):
    """Run the CLI on ``argv`` (default: sys.argv[1:]); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.threads is not None:
            threads.set_threads(args.threads)
        else:
            threads.setting()  # a bad $MINIGRAD_NETS_THREADS is an error now, not halfway through
    except ValueError as err:
        parser.error(str(err))
    try:
        with threads.training_threads():
            return int(args.func(args) or 0)
    except (ValueError, TypeError, OSError) as err:
        print(f"minigrad-nets {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
