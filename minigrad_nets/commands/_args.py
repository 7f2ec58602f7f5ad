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


def _checked(parse, what, ok):
    """An argparse type: ``parse(text)``, which must satisfy ``ok``; otherwise 'must be {what}, got ...'."""

    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    convert.__name__ = what
    return convert


positive_int = _checked(int, "a positive integer", lambda v: v >= 1)
non_negative_int = _checked(int, "a non-negative integer", lambda v: v >= 0)
positive_float = _checked(float, "a positive number", lambda v: math.isfinite(v) and v > 0)  # a learning rate
non_negative_float = _checked(float, "a non-negative number", lambda v: math.isfinite(v) and v >= 0)  # weight decay
rate = _checked(float, "a number in [0, 1)", lambda v: 0 <= v < 1)  # a dropout rate


def hidden_sizes(text):
    """Comma-separated positive ints ('100,50'; '' for no hidden layer) -> a list of ints; empty items are refused."""
    if not text.strip():
        return []
    parts = [s.strip() for s in text.split(",")]
    if "" in parts:
        where = "a leading" if parts[0] == "" else "a trailing" if parts[-1] == "" else "a doubled"
        raise argparse.ArgumentTypeError(f"hidden sizes are comma-separated integers with none left empty; "
                                         f"{text!r} has {where} comma (write e.g. 100,100)")
    try:
        sizes = [int(s) for s in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"hidden sizes are comma-separated integers, got {text!r}") from None
    if min(sizes) < 1:
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
