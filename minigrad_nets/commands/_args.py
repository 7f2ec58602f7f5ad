"""Argument types, help formatting and output checks shared by the command modules.

The type functions raise ``argparse.ArgumentTypeError`` so that a bad value
reads "argument --batch-size: must be a positive integer, got 'x'".
"""
import argparse
import math
import os
import tempfile


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default in --help, except None (those say their default in words) and flags."""

    def _get_help_string(self, action):
        if action.default is None or action.nargs == 0:
            return action.help
        return super()._get_help_string(action)


def _integer(text, what):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None


def positive_int(text):
    """An int >= 1 from the command line."""
    value = _integer(text, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def non_negative_int(text):
    """An int >= 0 from the command line."""
    value = _integer(text, "a non-negative integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def _finite_float(text, what):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def positive_float(text):
    """A finite float > 0 from the command line (a learning rate)."""
    value = _finite_float(text, "a positive number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def non_negative_float(text):
    """A finite float >= 0 from the command line (a weight decay)."""
    value = _finite_float(text, "a non-negative number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number, got {text!r}")
    return value


def rate(text):
    """A float in [0, 1) from the command line (a dropout rate)."""
    value = _finite_float(text, "a number in [0, 1)")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}")
    return value


def hidden_sizes(text):
    """Comma-separated positive ints ('100,50'; '' for no hidden layer) -> a list of ints."""
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"hidden sizes are comma-separated integers, got {text!r}") from None
    if min(sizes, default=1) < 1:
        raise argparse.ArgumentTypeError(f"hidden sizes must be positive integers, got {text!r}")
    return sizes


def init_spec(text):
    """A weight initialiser: a name such as 'he', or a positive std such as '0.01' (returned as a float)."""
    from ..initializers import get

    try:
        spec = float(text)
    except ValueError:
        spec = text
    if isinstance(spec, float) and not (math.isfinite(spec) and spec > 0):
        raise argparse.ArgumentTypeError(f"a std must be a positive number, got {text!r}")
    try:
        get(spec)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return spec


def check_output_dir(path, flag="--out"):
    """Raise a clear OSError now if ``path`` could not later be created / written as a directory; creates nothing."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise NotADirectoryError(f"{flag} {path}: {existing} is a file, not a directory")
    try:
        tempfile.TemporaryFile(dir=existing).close()  # os.access says yes to root even where writes fail
    except OSError as err:
        raise PermissionError(f"{flag} {path}: cannot write in {existing} ({err.strerror or err})") from None
    return path
