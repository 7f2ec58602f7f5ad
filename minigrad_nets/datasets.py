"""MNIST and Fashion-MNIST as plain numpy arrays: IDX reader, search, verified download, embedded subset.

Where the four files are looked for, in order (each file gzip-compressed
``NAME.gz`` or raw ``NAME``; the first directory holding all four wins):

1. ``data_dir`` if given, then ``data_dir/<dataset>``;
2. ``$MINIGRAD_NETS_DATA/<dataset>``, then (MNIST only) ``$MINIGRAD_NETS_DATA`` itself;
3. the user cache, ``$XDG_CACHE_HOME/minigrad_nets/<dataset>`` (default ``~/.cache/...``).

When none holds them and ``download=True`` (and ``$MINIGRAD_NETS_OFFLINE`` is
unset), they are downloaded from public mirrors into the first of those places
(``data_dir`` itself, else ``$MINIGRAD_NETS_DATA/<dataset>``, else the cache),
with a short network timeout, each file verified before it is moved into place
atomically. For MNIST without an explicit ``data_dir``, when nothing is found
and downloading is off or fails, the loader falls back to the real 10,000 /
2,000-image subset shipped in ``minigrad_nets/data/mnist`` and says so with an
``EmbeddedDataWarning`` (a ``UserWarning``). With an explicit ``data_dir`` it
never falls back: it raises, saying where to put the files.

Every file is validated: IDX magic number, element type, dimensions, exact
payload length, image/label counts, labels in 0..9, and (with ``verify=True``)
a checksum — SHA-256 of the decompressed payload for MNIST and the embedded
subset, the published MD5 of the ``.gz`` for Fashion-MNIST (raw, uncompressed
Fashion-MNIST files can only be checked structurally).
"""
import gzip
import hashlib
import math
import os
import sys
import urllib.error
import urllib.request
import warnings
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .atomic import atomic_write

ENV_DATA_DIR = "MINIGRAD_NETS_DATA"
ENV_OFFLINE = "MINIGRAD_NETS_OFFLINE"
NETWORK_TIMEOUT = 5.0  # seconds per connect / read: an offline machine must not hang
EMBEDDED_DIR = Path(__file__).resolve().parent / "data" / "mnist"

# role -> file name (without .gz)
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# SHA-256 of the decompressed payloads of the full MNIST files.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# SHA-256 of the decompressed payloads of the embedded subset (minigrad_nets/data/mnist).
EMBEDDED_SHA256 = {
    "train-images-idx3-ubyte": "2889698e6bc3614913e76901316712919d1998fc2b44512451bfe65bc1e668b1",
    "train-labels-idx1-ubyte": "651e38e2ac0632f5113ec18f1df4977117f953197819034009971a6675a0df78",
    "t10k-images-idx3-ubyte": "3f6bd66dee48df299584c67669bceee490faa25f931496bd7473b42106d7daed",
    "t10k-labels-idx1-ubyte": "7b098e5f6a3065807cebeabf36fb1724a8aff19f2673ac08b4923e0e8c715bce",
}
# MD5 of the published Fashion-MNIST .gz files.
FASHION_GZ_MD5 = {
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}


class Spec(NamedTuple):
    """What a dataset's files must be: title, counts, checksums, mirrors."""
    title: str
    n_train: int
    n_test: int
    sha256: dict  # file name -> sha256 of decompressed payload
    gz_md5: dict  # file name -> md5 of the .gz file
    mirrors: tuple


SPECS = {
    "mnist": Spec("MNIST", 60000, 10000, MNIST_SHA256, {}, (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    )),
    "fashion_mnist": Spec("Fashion-MNIST", 60000, 10000, {}, FASHION_GZ_MD5, (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    )),
}
EMBEDDED_SPEC = Spec("MNIST (embedded subset)", 10000, 2000, EMBEDDED_SHA256, {}, ())


class EmbeddedDataWarning(UserWarning):
    """Emitted when the loader uses the small MNIST subset shipped with the package."""


class DataSource(NamedTuple):
    """Where a dataset was read from: ``kind`` is 'data_dir', 'env', 'cache', 'download' or 'embedded'."""
    dataset: str
    kind: str
    directory: str
    n_train: int
    n_test: int

    def __str__(self):
        what = "embedded subset, " if self.kind == "embedded" else ""
        how = {"data_dir": "data_dir", "env": f"${ENV_DATA_DIR}", "cache": "user cache",
               "download": "downloaded", "embedded": "shipped with minigrad_nets"}[self.kind]
        return (f"{SPECS[self.dataset].title}: {what}{self.n_train:,} train / {self.n_test:,} test images "
                f"from {self.directory} ({how})")


# ---------------------------------------------------------------- the IDX format

# IDX element type code -> big-endian numpy dtype
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801  # 2051, 2049


def _read_bytes(path):
    """(file bytes, decompressed payload bytes): gzip is detected by its magic bytes, not the name."""
    raw = Path(path).read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw, raw
    try:
        return raw, gzip.decompress(raw)
    except EOFError:
        raise ValueError(f"{path}: truncated gzip file (ends before the compressed stream does)") from None
    except (OSError, zlib.error) as err:
        raise ValueError(f"{path}: corrupt gzip file: {err}") from None


def parse_idx(payload, name="IDX data"):
    """Decode IDX bytes into an array of the dimensions and element type the header declares."""
    if len(payload) < 4:
        raise ValueError(f"{name}: too short for an IDX header ({len(payload)} bytes)")
    if payload[0] != 0 or payload[1] != 0 or payload[2] not in IDX_TYPES:
        raise ValueError(f"{name}: bad IDX magic number 0x{payload[:4].hex()} "
                         f"(expected 0x0000 then a type code in {[hex(c) for c in IDX_TYPES]} and a rank)")
    ndim = payload[3]
    if ndim < 1:
        raise ValueError(f"{name}: IDX header declares rank 0")
    header = 4 + 4 * ndim
    if len(payload) < header:
        raise ValueError(f"{name}: truncated IDX header ({len(payload)} bytes, needs {header})")
    dims = tuple(int.from_bytes(payload[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_TYPES[payload[2]])
    expected = header + math.prod(dims) * dtype.itemsize  # Python ints: no int64 overflow
    if len(payload) != expected:
        problem = "truncated" if len(payload) < expected else "has trailing bytes"
        raise ValueError(f"{name}: {problem}: header declares dimensions {dims} ({expected} bytes), "
                         f"file holds {len(payload)} bytes")
    data = np.frombuffer(payload, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def load_idx(path):
    """Read one IDX file (gzip or raw) into an array with the dimensions its header declares."""
    _, payload = _read_bytes(path)
    return parse_idx(payload, str(path))


def _magic(payload):
    return int.from_bytes(payload[:4], "big")


# ---------------------------------------------------------------- checking a directory


def _file_in(directory, name):
    """The path of ``name.gz`` or ``name`` in ``directory``, or None."""
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def _checked_file(path, name, spec, verify):
    """Read and validate one of the four files; returns its array."""
    raw, payload = _read_bytes(path)
    if verify:
        if name in spec.sha256:
            digest = hashlib.sha256(payload).hexdigest()
            if digest != spec.sha256[name]:
                raise ValueError(f"{path}: checksum mismatch for {spec.title}: sha256 of the decompressed data is "
                                 f"{digest}, expected {spec.sha256[name]} (corrupt or a different file; "
                                 f"replace it, or pass verify=False for your own data)")
        elif name in spec.gz_md5 and raw is not payload:
            digest = hashlib.md5(raw).hexdigest()
            if digest != spec.gz_md5[name]:
                raise ValueError(f"{path}: checksum mismatch for {spec.title}: md5 of the .gz is {digest}, "
                                 f"expected {spec.gz_md5[name]} (corrupt or a different file)")
    want_magic = IMAGES_MAGIC if "images" in name else LABELS_MAGIC
    if _magic(payload) != want_magic:
        raise ValueError(f"{path}: bad magic number 0x{payload[:4].hex()} for an MNIST "
                         f"{'images' if 'images' in name else 'labels'} file (expected 0x{want_magic:08x})")
    return parse_idx(payload, str(path))


def _read_split(directory, split, spec, verify):
    """(images (N, 28, 28) uint8, labels (N,) int64) of the 'train' or 'test' split in ``directory``."""
    names = FILES[f"{split}_images"], FILES[f"{split}_labels"]
    paths = [_file_in(directory, n) for n in names]
    images, labels = (_checked_file(p, n, spec, verify) for p, n in zip(paths, names))
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{paths[0]}: images have dimensions {images.shape[1:]}, expected (28, 28)")
    if len(images) != len(labels):
        raise ValueError(f"{directory}: {split} split has {len(images)} images but {len(labels)} labels")
    expected = spec.n_train if split == "train" else spec.n_test
    if verify and len(images) != expected:
        raise ValueError(f"{paths[0]}: {len(images)} {split} images, {spec.title} has {expected}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{paths[1]}: labels must lie in 0..9, found {labels.min()}..{labels.max()}")
    return images, labels.astype(np.int64)


def _header_count(path):
    """The item count in an IDX header, read without loading the file."""
    with open(path, "rb") as f:
        is_gzip = f.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if is_gzip else open(path, "rb")) as f:
            header = f.read(8)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: unreadable IDX file: {err}") from None
    if len(header) < 8:
        raise ValueError(f"{path}: truncated IDX header")
    return int.from_bytes(header[4:8], "big")


# ---------------------------------------------------------------- where the files are


def cache_dir():
    """The user cache directory: ``$XDG_CACHE_HOME/minigrad_nets`` or ``~/.cache/minigrad_nets``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minigrad_nets"


def search_dirs(dataset, data_dir=None):
    """``[(kind, directory), ...]`` in the order the loader looks for ``dataset``'s files."""
    dirs = []
    if data_dir is not None:
        dirs += [("data_dir", Path(data_dir)), ("data_dir", Path(data_dir) / dataset)]
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        dirs.append(("env", Path(env) / dataset))
        if dataset == "mnist":  # the four files right in $MINIGRAD_NETS_DATA are taken to be MNIST
            dirs.append(("env", Path(env)))
    dirs.append(("cache", cache_dir() / dataset))
    return dirs


def _complete(directory):
    return all(_file_in(directory, name) for name in FILES.values())


def _source(dataset, kind, directory):
    counts = [_header_count(_file_in(directory, FILES[f"{s}_images"])) for s in ("train", "test")]
    return DataSource(dataset, kind, str(directory), *counts)


def locate(dataset="mnist", data_dir=None):
    """The ``DataSource`` ``load(dataset, data_dir, download=False)`` would read, or None (nothing found)."""
    _spec(dataset)
    for kind, directory in search_dirs(dataset, data_dir):
        if _complete(directory):
            return _source(dataset, kind, directory)
    if dataset == "mnist" and data_dir is None:
        return _source(dataset, "embedded", EMBEDDED_DIR)
    return None


def locate_mnist(data_dir=None):
    """Where ``load_mnist(data_dir, download=False)`` would read MNIST from: a ``DataSource`` or None."""
    return locate("mnist", data_dir)


def locate_fashion_mnist(data_dir=None):
    """Where ``load_fashion_mnist(data_dir, download=False)`` would read from: a ``DataSource`` or None."""
    return locate("fashion_mnist", data_dir)


def _spec(dataset):
    if dataset not in SPECS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(SPECS)}")
    return SPECS[dataset]


# ---------------------------------------------------------------- download


class DownloadError(OSError):
    """No mirror delivered a verified copy of a file."""


def _fetch(url, out, progress, desc):
    """Stream ``url`` into the open binary file ``out`` (with a tqdm bar when available and wanted)."""
    with urllib.request.urlopen(url, timeout=NETWORK_TIMEOUT) as response:
        total = response.headers.get("Content-Length")
        bar = None
        if progress:
            try:
                from tqdm.auto import tqdm
                bar = tqdm(total=int(total) if total else None, unit="B", unit_scale=True, desc=desc, leave=False)
            except ImportError:
                print(f"downloading {desc} from {url}", file=sys.stderr)
        try:
            while chunk := response.read(1 << 16):
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()


def _download_file(name, target, spec, progress):
    """Fetch ``name.gz`` into ``target`` from the first mirror that gives a verified copy; atomic."""
    failures = []
    for mirror in spec.mirrors:
        url = f"{mirror}{name}.gz"
        try:
            atomic_write(target / f"{name}.gz", lambda out: _fetch(url, out, progress, f"{name}.gz"), binary=True,
                         check=lambda tmp: _checked_file(tmp, name, spec, verify=True))
            return
        except (OSError, ValueError) as err:  # network errors are OSErrors (URLError, timeouts)
            failures.append(f"{url}: {err}")
    raise DownloadError(f"could not download {name}.gz from {len(failures)} mirror(s): "
                        + "; ".join(failures or ["no mirrors"]))


def _download(dataset, target, progress):
    """Download the missing files of ``dataset`` into ``target``; nothing partial is left on failure."""
    spec = _spec(dataset)
    created = [d for d in (target, *target.parents) if not d.exists()]
    target.mkdir(parents=True, exist_ok=True)
    try:
        for name in FILES.values():
            if not _file_in(target, name):
                _download_file(name, target, spec, progress)
    except BaseException:
        for directory in created:  # deepest first; only the ones this call made, and only if empty
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        raise


class DataNotFoundError(FileNotFoundError):
    """The dataset's files are in none of the places searched; ``places`` lists them, ``reason`` why none was fetched.

    ``message(data_dir_hint, download_hint)`` words the error for a caller: the
    Python API says ``data_dir=...`` / ``download=True``, the CLI ``--data-dir`` / ``--download``
    (``download_hint=None``: say nothing about downloading).
    """

    def __init__(self, dataset, places, reason, downloaded=False):
        self.dataset, self.places, self.reason, self.downloaded = dataset, list(places), reason, downloaded
        super().__init__(self.message())

    def message(self, data_dir_hint="pass data_dir=...", download_hint="download=True"):
        """The error text, with the caller's words for giving a directory and for asking to download."""
        names = ", ".join(f"{n}.gz" for n in FILES.values())
        text = (f"{SPECS[self.dataset].title} files not found. Put the four files ({names}; gzip or raw) in one "
                f"of: " + "; ".join(map(str, self.places)) + f" (or set ${ENV_DATA_DIR}, or {data_dir_hint})")
        if self.downloaded:
            return f"{text}. Download failed: {self.reason}"
        ask = f", or ask for it with {download_hint}" if download_hint and self.reason == "downloading is off" else ""
        return f"{text}; {self.reason}{ask}"

    def __str__(self):
        return self.message()


def _not_found(dataset, data_dir, reason, downloaded=False):
    return DataNotFoundError(dataset, [d for _, d in search_dirs(dataset, data_dir)], reason, downloaded)


def _find_or_fetch(dataset, data_dir, download, progress):
    """The ``DataSource`` to read, downloading or falling back to the embedded subset as documented above."""
    for kind, directory in search_dirs(dataset, data_dir):
        if _complete(directory):
            return _source(dataset, kind, directory)
    may_fall_back = dataset == "mnist" and data_dir is None
    reason = "downloading is off"
    if download and os.environ.get(ENV_OFFLINE, "") not in ("", "0"):
        reason = f"${ENV_OFFLINE} is set"
    elif download:
        target = Path(data_dir) if data_dir is not None else search_dirs(dataset)[0][1]
        try:
            _download(dataset, target, progress)
            return _source(dataset, "download", target)
        except OSError as err:
            if not may_fall_back:
                raise _not_found(dataset, data_dir, err, downloaded=True) from None
            reason = f"download failed ({err})"
    if may_fall_back:
        source = _source(dataset, "embedded", EMBEDDED_DIR)
        warnings.warn(f"MNIST not found and {reason}; using the embedded subset "
                      f"({source.n_train:,} train / {source.n_test:,} test images). "
                      f"For full MNIST pass data_dir=, set ${ENV_DATA_DIR} or pass download=True.",
                      EmbeddedDataWarning, stacklevel=4)
        return source
    raise _not_found(dataset, data_dir, reason)


# ---------------------------------------------------------------- public loaders


def _convert(images, labels, normalize, flatten, one_hot, dtype):
    dtype = np.dtype(dtype)
    if normalize and dtype.kind != "f":
        raise TypeError(f"normalize=True needs a float dtype, got {dtype}")
    x = images.reshape(len(images), -1) if flatten else images.reshape(len(images), 1, 28, 28)
    x = x.astype(dtype)
    if normalize:
        x /= dtype.type(255)
    t = np.eye(10, dtype=dtype if dtype.kind == "f" else np.float64)[labels] if one_hot else labels
    return x, t


def load(dataset="mnist", data_dir=None, normalize=True, flatten=True, one_hot=False, dtype="float32",
         download=False, progress=True, *, verify=True, return_source=False):
    """``((x_train, t_train), (x_test, t_test))`` of ``dataset`` ('mnist' or 'fashion_mnist').

    x: (N, 784) or, with ``flatten=False``, (N, 1, 28, 28), in ``dtype``, scaled to [0, 1] when
    ``normalize``; t: (N,) int64 labels or (N, 10) one-hot rows. ``verify=False`` skips the
    checksums and expected counts (for your own IDX files); ``return_source=True`` appends the
    ``DataSource`` as a third element.
    """
    _spec(dataset)
    source = _find_or_fetch(dataset, data_dir, download, progress)
    spec = EMBEDDED_SPEC if source.kind == "embedded" else _spec(dataset)
    directory = Path(source.directory)
    splits = tuple(_convert(*_read_split(directory, split, spec, verify), normalize, flatten, one_hot, dtype)
                   for split in ("train", "test"))
    return (*splits, source) if return_source else splits


def load_mnist(data_dir=None, normalize=True, flatten=True, one_hot=False, dtype="float32",
               download=False, progress=True, *, verify=True, return_source=False):
    """MNIST as ``((x_train, t_train), (x_test, t_test))``; x (N, 784) in [0, 1], t (N,) int labels. See ``load``."""
    return load("mnist", data_dir, normalize, flatten, one_hot, dtype, download, progress,
                verify=verify, return_source=return_source)


def load_fashion_mnist(data_dir=None, normalize=True, flatten=True, one_hot=False, dtype="float32",
                       download=False, progress=True, *, verify=True, return_source=False):
    """Fashion-MNIST as ``((x_train, t_train), (x_test, t_test))``, like ``load_mnist`` (no embedded subset)."""
    return load("fashion_mnist", data_dir, normalize, flatten, one_hot, dtype, download, progress,
                verify=verify, return_source=return_source)


# ---------------------------------------------------------------- a held-out split


def split(x, t, fraction, seed=0):
    """``((x_rest, t_rest), (x_held, t_held))``: a seeded shuffle, then the first ``round(fraction * N)`` held out.

    The book's validation split (ch06/hyperparameter_optimization.py holds out
    20% after ``shuffle_dataset``), made reproducible: the same ``seed`` gives
    the same split. Both parts keep the order of the shuffle; the inputs are not
    modified. Each part must get at least one example.
    """
    x, t = np.asarray(x), np.asarray(t)
    if x.ndim < 1 or t.ndim < 1 or len(x) != len(t):
        raise ValueError(f"x and t must have the same number of examples, got shapes {x.shape} and {t.shape}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.integer, np.floating)) \
            or not 0 < fraction < 1:
        raise ValueError(f"fraction must be a number in (0, 1), the share held out, got {fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    held = int(round(float(fraction) * len(x)))
    if not 0 < held < len(x):
        raise ValueError(f"holding out {fraction:g} of {len(x)} examples leaves "
                         f"{'nothing held out' if held == 0 else 'nothing to train on'}; "
                         f"use more examples or another fraction")
    order = np.random.default_rng(int(seed)).permutation(len(x))
    rest, out = order[held:], order[:held]
    return (x[rest], t[rest]), (x[out], t[out])
