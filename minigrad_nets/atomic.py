"""Atomic file writes: a temp file in the target's folder, fsync, then os.replace onto the target."""
import os
import tempfile


def atomic_write(path, write, binary=False, check=None):
    """Call ``write(file)`` on a temp file beside ``path``, fsync it, then os.replace it onto ``path``; returns path.

    ``check(temp_path)``, when given, runs before the replace (raise to reject
    the file). A reader never sees a half-written file; on any error the temp
    file is removed and ``path`` is left as it was.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".part")
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            check(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask():
    """The process umask (mkstemp makes 0600 files; written files should follow the umask like open() does)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable_file(path, what="output file"):
    """Raise a clear OSError now if ``path`` could not be written later; creates its folder if missing."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {path} is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        tempfile.TemporaryFile(dir=directory).close()  # os.access says yes to root even on /proc
    except OSError as err:
        raise type(err)(f"cannot write {what} {path}: {err.strerror or err}") from None
    return path
