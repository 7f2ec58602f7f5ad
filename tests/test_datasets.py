"""The IDX reader, the file search, the verified download (from a local fake mirror) and the embedded subset."""
import gzip
import hashlib
import urllib.error
import warnings

import numpy as np
import pytest

import minigrad_nets as mg
from minigrad_nets import datasets
from minigrad_nets.datasets import FILES

# ---------------------------------------------------------------- tiny IDX files


def idx_bytes(array, type_code=0x08):
    """IDX encoding of ``array`` (big-endian elements, as the format says)."""
    dtype = np.dtype(datasets.IDX_TYPES[type_code])
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.asarray(array).astype(dtype).tobytes()


def tiny_split(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n, dtype=np.uint8)


def write_dataset(directory, n_train=6, n_test=4, seed=0, compress=True):
    """Four tiny MNIST-format files in ``directory``; returns {file name: decompressed payload}."""
    directory.mkdir(parents=True, exist_ok=True)
    payloads = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = tiny_split(n, seed + (split == "test"))
        payloads[FILES[f"{split}_images"]] = idx_bytes(images)
        payloads[FILES[f"{split}_labels"]] = idx_bytes(labels)
    for name, payload in payloads.items():
        if compress:
            (directory / f"{name}.gz").write_bytes(gzip.compress(payload, mtime=0))
        else:
            (directory / name).write_bytes(payload)
    return payloads


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No $MINIGRAD_NETS_DATA, an empty private cache, and no real network access."""
    monkeypatch.delenv(datasets.ENV_DATA_DIR, raising=False)
    monkeypatch.delenv(datasets.ENV_OFFLINE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))

    def no_network(url, out, progress, desc):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(datasets, "_fetch", no_network)
    return tmp_path


def tiny_spec(payloads, mirrors=()):
    """An MNIST spec whose checksums and counts are those of the tiny files."""
    sha = {name: hashlib.sha256(p).hexdigest() for name, p in payloads.items()}
    n_train = int.from_bytes(payloads[FILES["train_images"]][4:8], "big")
    n_test = int.from_bytes(payloads[FILES["test_images"]][4:8], "big")
    return datasets.Spec("MNIST", n_train, n_test, sha, {}, tuple(mirrors))


# ---------------------------------------------------------------- load_idx


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("type_code, values", [
    (0x08, np.arange(24, dtype=np.uint8).reshape(2, 3, 4)),
    (0x0C, np.array([-7, 0, 1 << 30], dtype=np.int32)),
    (0x0E, np.array([[1.5, -2.25], [np.pi, 0.0]])),
])
def test_load_idx_round_trip(tmp_path, compress, type_code, values):
    data = idx_bytes(values, type_code)
    path = tmp_path / "f.idx"
    path.write_bytes(gzip.compress(data) if compress else data)
    out = datasets.load_idx(path)
    np.testing.assert_array_equal(out, values)
    assert out.shape == values.shape and out.dtype.isnative


def test_load_idx_bad_magic(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x01\x00\x08\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError, match="bad IDX magic number 0x01000801"):
        datasets.load_idx(path)
    path.write_bytes(b"\x00\x00\x07\x01" + (3).to_bytes(4, "big") + b"abc")  # unknown type code
    with pytest.raises(ValueError, match="bad IDX magic"):
        datasets.load_idx(path)


def test_load_idx_truncated_and_trailing(tmp_path):
    data = idx_bytes(np.zeros((5, 28, 28), np.uint8))
    path = tmp_path / "t"
    path.write_bytes(data[:-1])
    with pytest.raises(ValueError, match=r"truncated: header declares dimensions \(5, 28, 28\)"):
        datasets.load_idx(path)
    path.write_bytes(data + b"\x00")
    with pytest.raises(ValueError, match="trailing bytes"):
        datasets.load_idx(path)
    path.write_bytes(data[:10])
    with pytest.raises(ValueError, match="truncated IDX header"):
        datasets.load_idx(path)


def test_load_idx_truncated_gzip(tmp_path):
    blob = gzip.compress(idx_bytes(np.arange(1000, dtype=np.uint8)))
    path = tmp_path / "t.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="truncated gzip"):
        datasets.load_idx(path)


def test_count_in_header_must_match_the_data(tmp_path):
    images, labels = tiny_split(3, 0)
    data = bytearray(idx_bytes(images))
    data[4:8] = (4).to_bytes(4, "big")  # says 4 images, holds 3
    path = tmp_path / "x"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="truncated"):
        datasets.load_idx(path)


# ---------------------------------------------------------------- a dataset directory


def test_tiny_directory_loads_with_verify_false(clean_env):
    write_dataset(clean_env / "d", n_train=6, n_test=4)
    (x, t), (xt, tt), source = mg.datasets.load_mnist(clean_env / "d", verify=False, return_source=True)
    assert x.shape == (6, 784) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert t.shape == (6,) and t.dtype == np.int64
    assert xt.shape == (4, 784) and tt.shape == (4,)
    assert source.kind == "data_dir" and (source.n_train, source.n_test) == (6, 4)
    images, labels = tiny_split(6, 0)
    np.testing.assert_allclose(x, images.reshape(6, -1) / np.float32(255), rtol=1e-7)
    np.testing.assert_array_equal(t, labels)


def test_options_flatten_one_hot_dtype(clean_env):
    write_dataset(clean_env / "d", compress=False)
    (x, t), _ = mg.datasets.load_mnist(clean_env / "d", flatten=False, one_hot=True, dtype="float64",
                                       normalize=False, verify=False)
    images, labels = tiny_split(6, 0)
    assert x.shape == (6, 1, 28, 28) and x.dtype == np.float64
    np.testing.assert_array_equal(x[:, 0], images)
    assert t.shape == (6, 10) and t.dtype == np.float64
    np.testing.assert_array_equal(t.argmax(axis=1), labels)
    with pytest.raises(TypeError, match="normalize=True needs a float dtype"):
        mg.datasets.load_mnist(clean_env / "d", dtype="uint8", verify=False)


def test_checksum_mismatch_is_a_clear_error(clean_env):
    write_dataset(clean_env / "d")
    with pytest.raises(ValueError, match="checksum mismatch for MNIST: sha256"):
        mg.datasets.load_mnist(clean_env / "d")


def test_fashion_md5_of_gz_is_checked(clean_env):
    write_dataset(clean_env / "d")
    with pytest.raises(ValueError, match="checksum mismatch for Fashion-MNIST: md5 of the .gz"):
        mg.datasets.load_fashion_mnist(clean_env / "d")


def test_wrong_magic_for_role(clean_env, monkeypatch):
    payloads = write_dataset(clean_env / "d")
    # swap: a labels file where the images should be
    name = FILES["train_images"]
    (clean_env / "d" / f"{name}.gz").write_bytes(gzip.compress(payloads[FILES["train_labels"]]))
    with pytest.raises(ValueError, match="bad magic number 0x00000801 for an MNIST images file"):
        mg.datasets.load_mnist(clean_env / "d", verify=False)


def test_image_and_label_counts_must_agree(clean_env):
    write_dataset(clean_env / "d", n_train=6)
    _, labels = tiny_split(5, 0)
    (clean_env / "d" / f"{FILES['train_labels']}.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    with pytest.raises(ValueError, match="train split has 6 images but 5 labels"):
        mg.datasets.load_mnist(clean_env / "d", verify=False)


def test_expected_counts_are_checked(clean_env, monkeypatch):
    payloads = write_dataset(clean_env / "d")
    spec = tiny_spec(payloads)._replace(n_train=7)
    monkeypatch.setitem(datasets.SPECS, "mnist", spec)
    with pytest.raises(ValueError, match="6 train images, MNIST has 7"):
        mg.datasets.load_mnist(clean_env / "d")


def test_labels_out_of_range(clean_env):
    write_dataset(clean_env / "d")
    bad = np.array([0, 1, 2, 3, 12, 5], np.uint8)
    (clean_env / "d" / f"{FILES['train_labels']}.gz").write_bytes(gzip.compress(idx_bytes(bad)))
    with pytest.raises(ValueError, match=r"labels must lie in 0..9, found 0..12"):
        mg.datasets.load_mnist(clean_env / "d", verify=False)


# ---------------------------------------------------------------- search order


def test_search_order(clean_env, monkeypatch):
    given, env, cache = clean_env / "given", clean_env / "env", clean_env / "xdg-cache" / "minigrad_nets"
    write_dataset(cache / "mnist", n_train=3)
    write_dataset(env, n_train=4)
    monkeypatch.setenv(datasets.ENV_DATA_DIR, str(env))

    def used(data_dir=None):
        (x, _), _, source = mg.datasets.load_mnist(data_dir, verify=False, download=False, return_source=True)
        return len(x), source.kind

    assert used() == (4, "env")                 # $MINIGRAD_NETS_DATA itself
    write_dataset(env / "mnist", n_train=5)
    assert used() == (5, "env")                 # $MINIGRAD_NETS_DATA/mnist before $MINIGRAD_NETS_DATA
    write_dataset(given / "mnist", n_train=2)
    assert used(given) == (2, "data_dir")       # data_dir/mnist before the environment
    write_dataset(given, n_train=1)
    assert used(given) == (1, "data_dir")       # data_dir itself first
    monkeypatch.delenv(datasets.ENV_DATA_DIR)
    assert used() == (3, "cache")
    assert mg.datasets.locate_mnist().kind == "cache"
    kinds = [kind for kind, _ in datasets.search_dirs("mnist", given)]
    assert kinds == ["data_dir", "data_dir", "cache"]


def test_flat_env_directory_is_mnist_only(clean_env, monkeypatch):
    write_dataset(clean_env / "env")  # MNIST-named files right in $MINIGRAD_NETS_DATA
    monkeypatch.setenv(datasets.ENV_DATA_DIR, str(clean_env / "env"))
    assert mg.datasets.locate_mnist().kind == "env"
    assert mg.datasets.locate_fashion_mnist() is None
    assert [d.name for _, d in datasets.search_dirs("fashion_mnist")] == ["fashion_mnist", "fashion_mnist"]


def test_incomplete_directory_is_skipped(clean_env, monkeypatch):
    write_dataset(clean_env / "env", n_train=4)
    (clean_env / "env" / f"{FILES['test_labels']}.gz").unlink()
    write_dataset(clean_env / "xdg-cache" / "minigrad_nets" / "mnist", n_train=3)
    monkeypatch.setenv(datasets.ENV_DATA_DIR, str(clean_env / "env"))
    (x, _), _ = mg.datasets.load_mnist(verify=False, download=False)
    assert len(x) == 3


# ---------------------------------------------------------------- embedded subset


def test_embedded_subset_is_the_fallback(clean_env):
    with pytest.warns(datasets.EmbeddedDataWarning, match="embedded subset"):
        (x, t), (xt, tt), source = mg.datasets.load_mnist(download=False, return_source=True)
    assert source.kind == "embedded" and "embedded subset" in str(source)
    assert x.shape == (10000, 784) and x.dtype == np.float32
    assert t.shape == (10000,) and t.dtype == np.int64
    assert xt.shape == (2000, 784) and tt.shape == (2000,)
    assert 0.0 == x.min() and x.max() == 1.0
    assert set(np.unique(t)) == set(range(10)) and set(np.unique(tt)) == set(range(10))
    # the subset is the start of real MNIST: the first training label of MNIST is a 5, the first test label a 7
    assert t[0] == 5 and tt[0] == 7
    assert mg.datasets.locate_mnist().kind == "embedded"


def test_embedded_after_a_failed_download_leaves_nothing(clean_env):
    with pytest.warns(datasets.EmbeddedDataWarning, match="download failed"):
        _, _, source = mg.datasets.load_mnist(return_source=True, download=True)
    assert source.kind == "embedded"
    assert not (clean_env / "xdg-cache").exists()  # the directories it made for the download are gone


def test_offline_variable_skips_the_download(clean_env, monkeypatch):
    monkeypatch.setenv(datasets.ENV_OFFLINE, "1")
    monkeypatch.setattr(datasets, "_fetch", lambda *a: pytest.fail("must not touch the network"))
    with pytest.warns(datasets.EmbeddedDataWarning, match="MINIGRAD_NETS_OFFLINE"):
        mg.datasets.load_mnist(download=True)


def test_explicit_data_dir_never_falls_back(clean_env):
    with pytest.raises(FileNotFoundError, match="Put the four files") as err:
        mg.datasets.load_mnist(clean_env / "empty", download=False)
    assert str(clean_env / "empty") in str(err.value)
    with pytest.raises(OSError, match="Download failed"):
        mg.datasets.load_mnist(clean_env / "empty", download=True)
    assert not (clean_env / "empty").exists()
    assert mg.datasets.locate_mnist(clean_env / "empty") is None


def test_fashion_has_no_embedded_subset(clean_env):
    with pytest.raises(FileNotFoundError, match="Fashion-MNIST files not found"):
        mg.datasets.load_fashion_mnist(download=False)


# ---------------------------------------------------------------- download from a local fake mirror


@pytest.fixture
def mirror(clean_env, monkeypatch):
    """A good file:// mirror and a corrupt one; the real fetch code reads them."""
    monkeypatch.undo()  # restore the real _fetch, then re-apply the environment
    monkeypatch.delenv(datasets.ENV_DATA_DIR, raising=False)
    monkeypatch.delenv(datasets.ENV_OFFLINE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(clean_env / "xdg-cache"))
    payloads = write_dataset(clean_env / "good-mirror")
    write_dataset(clean_env / "bad-mirror", seed=99)  # same format, other bytes: checksums fail
    good, bad = ((clean_env / m).as_uri() + "/" for m in ("good-mirror", "bad-mirror"))
    return payloads, good, bad


def leftovers(directory):
    return sorted(p.name for p in directory.rglob("*")) if directory.exists() else []


def test_download_verifies_and_installs(mirror, clean_env, monkeypatch):
    payloads, good, bad = mirror
    monkeypatch.setitem(datasets.SPECS, "mnist", tiny_spec(payloads, [bad, good]))
    (x, t), _, source = mg.datasets.load_mnist(progress=False, return_source=True, download=True)
    assert source.kind == "download" and len(x) == 6
    target = clean_env / "xdg-cache" / "minigrad_nets" / "mnist"
    assert leftovers(target) == sorted(f"{n}.gz" for n in FILES.values())  # no .part files
    # a second call finds them in the cache
    _, _, source = mg.datasets.load_mnist(progress=False, return_source=True, download=True)
    assert source.kind == "cache"


def test_download_into_explicit_data_dir_with_progress(mirror, clean_env, monkeypatch):
    payloads, good, _ = mirror
    monkeypatch.setitem(datasets.SPECS, "mnist", tiny_spec(payloads, [good]))
    (x, _), _ = mg.datasets.load_mnist(clean_env / "mine", progress=True, download=True)
    assert len(x) == 6 and len(leftovers(clean_env / "mine")) == 4


def test_corrupt_download_leaves_nothing_behind(mirror, clean_env, monkeypatch):
    payloads, _, bad = mirror
    monkeypatch.setitem(datasets.SPECS, "mnist", tiny_spec(payloads, [bad]))
    with pytest.raises(OSError, match="checksum mismatch"):
        mg.datasets.load_mnist(clean_env / "target" / "deep", progress=False, download=True)
    assert not (clean_env / "target").exists()
    # an existing directory stays, but holds no partial file
    (clean_env / "kept").mkdir()
    with pytest.raises(OSError, match="could not download"):
        mg.datasets.load_mnist(clean_env / "kept", progress=False, download=True)
    assert leftovers(clean_env / "kept") == []


def test_interrupted_download_leaves_nothing_behind(mirror, clean_env, monkeypatch):
    payloads, good, _ = mirror
    monkeypatch.setitem(datasets.SPECS, "mnist", tiny_spec(payloads, [good]))
    real_fetch = datasets._fetch
    calls = []

    def fetch_then_die(url, out, progress, desc):
        calls.append(url)
        if len(calls) == 2:
            out.write(b"partial")
            raise KeyboardInterrupt
        real_fetch(url, out, progress, desc)

    monkeypatch.setattr(datasets, "_fetch", fetch_then_die)
    (clean_env / "dest").mkdir()
    with pytest.raises(KeyboardInterrupt):
        mg.datasets.load_mnist(clean_env / "dest", progress=False, download=True)
    assert leftovers(clean_env / "dest") == [f"{FILES['train_images']}.gz"]  # the verified first file only
    # the next call fetches only what is missing
    monkeypatch.setattr(datasets, "_fetch", real_fetch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (x, _), _ = mg.datasets.load_mnist(clean_env / "dest", progress=False, download=True)
    assert len(x) == 6


def test_unknown_dataset_is_a_value_error_listing_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar'; choose one of \['fashion_mnist', 'mnist'\]"):
        datasets.load("cifar", download=False)


def test_parse_idx_dimensions_whose_product_overflows_int64_are_a_clear_error():
    # 2**31 x 2**31 x 4 overflows int64 to 0: the old length check passed and reshape failed
    header = bytes([0, 0, 0x08, 3]) + (2**31).to_bytes(4, "big") * 2 + (4).to_bytes(4, "big")
    with pytest.raises(ValueError, match="truncated: header declares dimensions"):
        datasets.parse_idx(header, "big.idx")


# ---------------------------------------------------------------- download only when asked; the words of the error


def test_load_mnist_does_not_download_unless_asked(clean_env, monkeypatch):
    monkeypatch.setattr(datasets, "_fetch", lambda *a: pytest.fail("must not touch the network unless asked"))
    with pytest.warns(datasets.EmbeddedDataWarning, match="downloading is off") as record:
        _, _, source = mg.datasets.load_mnist(return_source=True)
    assert source.kind == "embedded" and "download=True" in str(record[0].message)
    with pytest.raises(FileNotFoundError, match=r"downloading is off, or ask for it with download=True"):
        mg.datasets.load_mnist(clean_env / "empty")
    with pytest.raises(FileNotFoundError):
        mg.datasets.load_fashion_mnist()
    assert not (clean_env / "xdg-cache").exists() and not (clean_env / "empty").exists()


def test_not_found_error_can_be_worded_for_the_cli(clean_env):
    with pytest.raises(datasets.DataNotFoundError) as info:
        mg.datasets.load_mnist(clean_env / "empty")
    err = info.value
    assert isinstance(err, FileNotFoundError) and err.dataset == "mnist"
    assert str(clean_env / "empty") in [str(p) for p in err.places]
    assert "data_dir=" in str(err)
    cli = err.message("pass --data-dir DIR", "--download")
    assert "data_dir=" not in cli and "download=True" not in cli
    assert "--data-dir DIR" in cli and "ask for it with --download" in cli
    with pytest.raises(datasets.DataNotFoundError, match="Download failed") as info:
        mg.datasets.load_mnist(clean_env / "empty", download=True)
    assert "--download" not in info.value.message("pass --data-dir DIR", "--download")  # it was asked for


# ---------------------------------------------------------------- split


def test_split_holds_out_a_seeded_shuffle():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)   # row i is (2i, 2i + 1)
    t = np.arange(10) * 10                               # label of row i is 10 i
    (xr, tr), (xh, th) = mg.datasets.split(x, t, 0.2, seed=3)
    assert len(xh) == 2 and len(xr) == 8
    # rows stay paired with their labels, and together the parts are the whole set, each row once
    np.testing.assert_array_equal(xr[:, 0], tr / 5)
    np.testing.assert_array_equal(xh[:, 0], th / 5)
    assert sorted(np.concatenate([tr, th]).tolist()) == t.tolist()
    # the same seed gives the same split, another seed (here) another one; the inputs are untouched
    again = mg.datasets.split(x, t, 0.2, seed=3)
    np.testing.assert_array_equal(again[1][1], th)
    assert any(not np.array_equal(mg.datasets.split(x, t, 0.2, seed=s)[1][1], th) for s in range(4, 10))
    np.testing.assert_array_equal(t, np.arange(10) * 10)
    # the book's numbers: 500 images, 20% -> 100 held out, 400 to train on
    (xr, _), (xh, _) = mg.datasets.split(np.zeros((500, 3)), np.zeros(500), 0.2, seed=0)
    assert (len(xr), len(xh)) == (400, 100)


@pytest.mark.parametrize("args, message", [
    ((np.zeros((4, 2)), np.zeros(3), 0.5), "same number of examples"),
    ((np.zeros((4, 2)), np.zeros(4), 0.0), r"fraction must be a number in \(0, 1\)"),
    ((np.zeros((4, 2)), np.zeros(4), 1.0), r"fraction must be a number in \(0, 1\)"),
    ((np.zeros((4, 2)), np.zeros(4), 0.1), "nothing held out"),
    ((np.zeros((4, 2)), np.zeros(4), 0.9), "nothing to train on"),
])
def test_split_refuses_bad_input_clearly(args, message):
    with pytest.raises(ValueError, match=message):
        mg.datasets.split(*args)
