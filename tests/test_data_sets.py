"""Every data set loader on small files the tests make themselves; downloads with the network
mocked (only file:// URLs are served); checksums; corrupt files; wrong requests."""
import gzip
import hashlib
import io
import logging
import os
import pickle
import re
import struct
import tarfile
from dataclasses import replace
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from colddiff import data, download
from colddiff.data import cifar, idx
from colddiff.download import FileSpec, check_file
from colddiff.errors import ConfigError, InputError

REAL_URLOPEN = download.urlopen


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private cache, no system copies, and no network: only file:// URLs open."""
    monkeypatch.setenv("COLDDIFF_DATA", str(tmp_path / "cache"))
    monkeypatch.setitem(idx.SYSTEM_DIRS, "fashion-mnist", (tmp_path / "no-system-copy",))

    def offline(request, *a, **kw):
        url = request.full_url if hasattr(request, "full_url") else request
        if url.startswith("file://"):
            return REAL_URLOPEN(request, *a, **kw)
        raise URLError("[Errno -3] Temporary failure in name resolution (network mocked off)")

    monkeypatch.setattr(download, "urlopen", offline)
    return tmp_path


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def idx_bytes(a: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(np.uint8).tobytes()


def tiny_idx(n=(12, 5), seed=0):
    """{file name: raw IDX bytes} of a tiny MNIST-style set (n train, n test images)."""
    rng = np.random.default_rng(seed)
    out, arrays = {}, {}
    for split, k in zip(("train", "test"), n):
        x = rng.integers(0, 256, (k, 28, 28), dtype=np.uint8)
        y = (np.arange(k) % 10).astype(np.uint8)
        out[idx.IMAGE_FILES[split]] = idx_bytes(x)
        out[idx.LABEL_FILES[split]] = idx_bytes(y)
        arrays[split] = (x, y)
    return out, arrays


def write_idx(folder: Path, files: dict, gz=True, mtime=0):
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in files.items():
        if gz:
            (folder / name).write_bytes(gzip.compress(raw, mtime=mtime))
        else:
            (folder / name[:-3]).write_bytes(raw)


def publish(monkeypatch, source, files: dict, mtime=0):
    """Make the tiny files the 'published' ones: checksums of their gzip (with ``mtime``)."""
    for name, raw in files.items():
        monkeypatch.setitem(source.table, name, FileSpec(name, md5=md5(gzip.compress(raw, mtime=mtime)),
                                                         content_md5=md5(raw)))


def warnings_naming(caplog, text):
    return [r for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


# ---------------------------------------------------------------------------- IDX
def test_mnist_idx_gzip_and_plain_and_torchvision_layout(tmp_path):
    files, arrays = tiny_idx()
    root = tmp_path / "root"
    write_idx(root, {k: v for k, v in files.items() if k.startswith("train")}, gz=True)
    write_idx(root, {k: v for k, v in files.items() if k.startswith("t10k")}, gz=False)
    train = data.load("mnist", "train", root=root, download=False)
    test = data.load("mnist", "test", root=root, download=False)
    assert len(train) == 12 and len(test) == 5
    x, y = train[3]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and y == 3
    assert torch.allclose(x[0], torch.from_numpy(arrays["train"][0][3]).float() / 127.5 - 1)
    assert test[4][1] == 4 and -1 <= float(test[0][0].min()) and float(test[0][0].max()) <= 1
    big = data.load("mnist", "test", root=root, image_size=32, channels=3)
    assert big[0][0].shape == (3, 32, 32)
    # torchvision's layout root/MNIST/raw is found too
    tv = tmp_path / "tv"
    write_idx(tv / "MNIST" / "raw", files)
    assert len(data.load("mnist", "test", root=tv)) == 5
    assert pickle.loads(pickle.dumps(train))[3][1] == 3


def test_idx_corrupt_files_are_named(tmp_path):
    files, _ = tiny_idx()
    root = tmp_path / "r"
    write_idx(root, files)
    gz = root / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:200])
    with pytest.raises(InputError, match="train-images-idx3-ubyte.gz.*(truncated|corrupt)"):
        data.load("mnist", "train", root=root)
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(files["t10k-images-idx3-ubyte.gz"][:-10]))
    with pytest.raises(InputError, match="truncated or padded"):
        data.load("mnist", "test", root=root)
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"GIF89a not idx at all"))
    with pytest.raises(InputError, match="not an IDX file"):
        data.load("mnist", "test", root=root)
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((3, 28, 28)))))
    with pytest.raises(InputError, match="3 images but .* 5 labels"):
        data.load("mnist", "test", root=root)


def test_fashion_mnist_from_the_debian_system_folder(tmp_path, monkeypatch):
    files, arrays = tiny_idx(seed=1)
    system = tmp_path / "usr-share-datasets-fashion-mnist"
    # Debian ships the files re-gzipped: same content, different bytes than the published ones
    write_idx(system, files, mtime=1591347949)
    publish(monkeypatch, idx.FASHION_MNIST, files, mtime=0)
    monkeypatch.setitem(idx.SYSTEM_DIRS, "fashion-mnist", (system,))
    ds = data.load("fashion-mnist", "train")
    assert len(ds) == 12 and ds.classes[9] == "Ankle boot"
    assert data.get("fashion-mnist").status().found["test"] == system
    checks = data.verify("fashion-mnist")
    assert len(checks) == 4 and all(c.ok for c in checks)
    assert all("recompressed copy" in c.detail for c in checks)
    # a copy in the user cache wins over the system one
    write_idx(Path(os.environ["COLDDIFF_DATA"]) / "fashion-mnist", files, gz=False)
    assert data.get("fashion-mnist").find("train") == Path(os.environ["COLDDIFF_DATA"]) / "fashion-mnist"


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist package is not installed")
def test_real_fashion_mnist_system_copy(monkeypatch):
    monkeypatch.setitem(idx.SYSTEM_DIRS, "fashion-mnist", (Path("/usr/share/datasets/fashion-mnist"),))
    test = data.load("fashion-mnist", "test", download=False)
    assert len(test) == 10000 and (np.bincount(test.labels) == 1000).all()
    assert all(c.ok for c in data.verify("fashion-mnist"))


# ---------------------------------------------------------------------------- downloads
def serve(tmp_path, files: dict) -> str:
    """A folder standing in for a mirror, as a file:// base URL."""
    mirror = tmp_path / "mirror"
    write_idx(mirror, files)
    return mirror.as_uri() + "/"


def test_download_verifies_checksum_renames_and_shows_progress(tmp_path, monkeypatch, capsys):
    files, _ = tiny_idx()
    publish(monkeypatch, idx.MNIST, files)
    monkeypatch.setattr(idx.MNIST, "mirrors", ("https://unreachable.invalid/", serve(tmp_path, files)))
    folder = data.fetch("mnist", progress=True)
    cache = Path(os.environ["COLDDIFF_DATA"]) / "mnist"
    assert folder == cache and sorted(p.name for p in cache.iterdir()) == sorted(files)
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz" in err and "100%" in err  # the tqdm bar
    assert all(c.ok for c in data.verify("mnist"))
    assert len(data.load("mnist", "test")) == 5


def test_loading_a_missing_set_downloads_it(tmp_path, monkeypatch):
    files, _ = tiny_idx()
    publish(monkeypatch, idx.MNIST, files)
    monkeypatch.setattr(idx.MNIST, "mirrors", (serve(tmp_path, files),))
    root = tmp_path / "mine"
    assert len(data.load("mnist", "train", root=root)) == 12
    assert sorted(p.name for p in root.iterdir()) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]


def test_checksum_mismatch_names_file_and_sums_and_leaves_nothing(tmp_path, monkeypatch):
    files, _ = tiny_idx()
    publish(monkeypatch, idx.MNIST, files)
    name = "train-images-idx3-ubyte.gz"
    monkeypatch.setitem(idx.MNIST.table, name, FileSpec(name, md5="0" * 32))
    monkeypatch.setattr(idx.MNIST, "mirrors", (serve(tmp_path, files),))
    with pytest.raises(InputError) as e:
        data.load("mnist", "train")
    msg = str(e.value)
    actual = md5(gzip.compress(files[name], mtime=0))
    assert "checksum mismatch for train-images-idx3-ubyte.gz" in msg and "0" * 32 in msg and actual in msg
    assert "colddiff data verify mnist" in msg and "\n" not in msg
    cache = Path(os.environ["COLDDIFF_DATA"]) / "mnist"
    assert not (cache / name).exists() and not list(cache.glob(".*part"))


def test_offline_missing_data_set_gives_one_clear_message(tmp_path):
    with pytest.raises(InputError) as e:
        data.load("mnist", "train")
    msg = str(e.value)
    assert "\n" not in msg
    for part in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", str(tmp_path / "cache" / "mnist"),
                 "Temporary failure in name resolution", "colddiff data verify mnist", "colddiff data info mnist"):
        assert part in msg, part
    with pytest.raises(InputError, match="download=False, so nothing was downloaded") as e:
        data.load("cifar10", "test", download=False)
    assert "cifar-10-python.tar.gz" in str(e.value)
    with pytest.raises(InputError, match="cannot download"):
        data.fetch("fashion-mnist")
    assert not list(tmp_path.rglob("*.part"))


class _Response(io.BytesIO):
    """A response that announces ``length`` bytes and fails after sending ``body``."""

    def __init__(self, body, length, fail=None):
        super().__init__(body)
        self.headers = {"Content-Length": str(length)}
        self.fail = fail

    def read(self, n=-1):
        chunk = super().read(n)
        if not chunk and self.fail:
            raise self.fail
        return chunk


@pytest.mark.parametrize("response", [
    lambda: _Response(b"x" * 100, 1000),                                       # connection closed early
    lambda: _Response(b"x" * 100, 1000, ConnectionResetError("reset by peer")),  # error mid-transfer
])
def test_interrupted_download_leaves_no_file(tmp_path, monkeypatch, response):
    monkeypatch.setattr(download, "urlopen", lambda *a, **k: response())
    dest = tmp_path / "d" / "file.bin"
    with pytest.raises(download.DownloadError, match="file.bin"):
        download.download(["https://example.org/file.bin"], dest, FileSpec("file.bin", md5="0" * 32), progress=False)
    assert list((tmp_path / "d").iterdir()) == []


def test_check_file_accepts_uncompressed_and_recompressed_copies(tmp_path):
    raw = b"\0\0\x08\x01\0\0\0\x03abc"
    spec = FileSpec("f.gz", md5=md5(gzip.compress(raw, mtime=0)), content_md5=md5(raw))
    (tmp_path / "f.gz").write_bytes(gzip.compress(raw, mtime=0))
    (tmp_path / "g.gz").write_bytes(gzip.compress(raw, mtime=99))
    (tmp_path / "f").write_bytes(raw)
    (tmp_path / "h").write_bytes(raw + b"!")
    assert check_file(tmp_path / "f.gz", spec).ok and "published" in check_file(tmp_path / "f.gz", spec).detail
    assert check_file(tmp_path / "g.gz", spec).ok and "recompressed" in check_file(tmp_path / "g.gz", spec).detail
    assert check_file(tmp_path / "f", spec).ok
    bad = check_file(tmp_path / "h", spec)
    assert bad.ok is False and spec.content_md5 in bad.detail and "MISMATCH" in str(bad)


# ---------------------------------------------------------------------------- CIFAR-10
def cifar_batches(seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for i, name in enumerate(["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                              "test_batch"]):
        n = 3 if name == "test_batch" else 2
        batch = {b"batch_label": name.encode(), b"labels": [(i + k) % 10 for k in range(n)],
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
        out[name] = batch
    out["batches.meta"] = {b"label_names": [c.encode() for c in cifar.Cifar10.classes]}
    return out


def make_cifar_tarball(path: Path, batches: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in batches.items():
            blob = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def test_cifar10_from_the_tarball_and_from_the_unpacked_folder(tmp_path, monkeypatch):
    batches = cifar_batches()
    root = tmp_path / "root"
    make_cifar_tarball(root / "cifar-10-python.tar.gz", batches)
    train, test = data.load("cifar10", "train", root=root), data.load("cifar10", "test", root=root)
    assert len(train) == 10 and len(test) == 3
    x, y = train[2]  # data_batch_2's first image
    raw = batches["data_batch_2"][b"data"][0]
    assert x.shape == (3, 32, 32) and y == 1
    assert torch.allclose(x[0], torch.from_numpy(raw[:1024].reshape(32, 32)).float() / 127.5 - 1)  # red plane
    assert torch.allclose(x[2], torch.from_numpy(raw[2048:].reshape(32, 32)).float() / 127.5 - 1)  # blue plane
    assert data.load("cifar10", "test", root=root, channels=1)[0][0].shape == (1, 32, 32)
    # published checksum of the tiny tarball -> verify says ok
    tb = root / "cifar-10-python.tar.gz"
    monkeypatch.setattr(cifar, "TARBALL", replace(cifar.TARBALL, md5=md5(tb.read_bytes())))
    assert [c.ok for c in data.verify("cifar10", root=root)] == [True]
    # an unpacked folder (as torchvision leaves it) works too
    unpacked = tmp_path / "unpacked" / "cifar-10-batches-py"
    unpacked.mkdir(parents=True)
    for name, obj in batches.items():
        (unpacked / name).write_bytes(pickle.dumps(obj, protocol=2))
    assert len(data.load("cifar10", "train", root=unpacked.parent)) == 10
    assert len(data.load("cifar10", "test", root=unpacked)) == 3


def test_cifar10_refuses_pickles_that_would_run_code(tmp_path):
    batches = cifar_batches()
    batches["test_batch"] = {b"data": os.getcwd, b"labels": []}  # unpickling would call into os
    make_cifar_tarball(tmp_path / "cifar-10-python.tar.gz", batches)
    with pytest.raises(InputError, match="refusing to unpickle posix.getcwd|refusing to unpickle"):
        data.load("cifar10", "test", root=tmp_path)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(InputError, match="cifar-10-python.tar.gz.*(truncated|corrupt)"):
        data.load("cifar10", "test", root=tmp_path)


# ---------------------------------------------------------------------------- CelebA
def face(color_inside=(255, 0, 0), color_outside=(0, 0, 255)) -> Image.Image:
    """178x218 like CelebA: a central 144x144 square in one colour (a margin for JPEG's 8x8
    blocks around the 128x128 crop), the rest in another."""
    im = Image.new("RGB", (178, 218), color_outside)
    im.paste(Image.new("RGB", (144, 144), color_inside), ((178 - 144) // 2, (218 - 144) // 2))
    return im


def make_celeba(root: Path, n=6, codes="000122"):
    (root / "img_align_celeba").mkdir(parents=True)
    lines = []
    for i in range(1, n + 1):
        face().save(root / "img_align_celeba" / f"{i:06d}.jpg", quality=95)
        lines.append(f"{i:06d}.jpg {codes[i - 1]}")
    lines.append(f"{n + 1:06d}.jpg 0")  # listed, but not in the folder
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")


def test_celeba_partition_crop_and_resize(tmp_path, caplog):
    root = tmp_path / "celeba"
    make_celeba(root)
    with caplog.at_level(logging.WARNING, "colddiff.data"):
        train = data.load("celeba", "train", root=root, image_size=64)
    assert len(train) == 3 and train.n_skipped == 1 and len(warnings_naming(caplog, "000007.jpg")) == 1
    x, y = train[0]
    assert x.shape == (3, 64, 64) and y == -1
    # only red survives the centre crop; resizing the whole 178x218 image would keep blue
    assert x[0].min() > 0.8 and x[2].max() < -0.8
    assert len(data.load("celeba", "valid", root=root)) == 1
    test = data.load("celeba", "test", root=root)
    assert len(test) == 2 and test[1][0].shape == (3, 128, 128)
    assert pickle.loads(pickle.dumps(test))[0][0].shape == (3, 128, 128)
    with pytest.raises(ConfigError, match="use 64 or 128"):
        data.load("celeba", "train", root=root, image_size=100)
    checks = data.verify("celeba", root=root)
    assert checks[0].ok is False and "d32c9cbf5e040fd4025c592c306e6668" in checks[0].detail  # tiny partition file
    assert checks[-1].ok is False and "6 of the 7" in checks[-1].detail


def test_celeba_missing_says_where_to_get_it(tmp_path):
    (tmp_path / "cache" / "celeba").mkdir(parents=True)
    (tmp_path / "cache" / "celeba" / "img_align_celeba.zip").write_bytes(b"PK")
    with pytest.raises(InputError) as e:
        data.load("celeba", "test")
    msg = str(e.value)
    for part in ("img_align_celeba", "list_eval_partition.txt", "mmlab.ie.cuhk.edu.hk", "cannot be downloaded",
                 "not unzipped", "colddiff data verify celeba"):
        assert part in msg, part


def test_corrupt_image_found_only_when_decoded_does_not_stop_an_epoch(tmp_path, caplog):
    root = tmp_path / "celeba"
    make_celeba(root)
    broken = root / "img_align_celeba" / "000002.jpg"
    broken.write_bytes(broken.read_bytes()[:300])  # a truncated JPEG: its header still reads
    ds = data.load("celeba", "train", root=root, image_size=64)
    with caplog.at_level(logging.WARNING, "colddiff.data"):
        batches = list(DataLoader(ds, batch_size=2))
    assert sum(b[0].shape[0] for b in batches) == 3
    assert ds.bad_at_read == [broken] and len(warnings_naming(caplog, "000002.jpg")) == 1
    assert torch.equal(ds[1][0], ds[2][0])  # the next readable image stands in


# ---------------------------------------------------------------------------- AFHQ
def make_afhq(root: Path, per_class=2):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for k, c in enumerate(("cat", "dog", "wild")):
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                a = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
                Image.fromarray(a).save(root / split / c / f"{c}_{i}.{'png' if i % 2 else 'jpg'}")


def test_afhq_labels_from_sub_folders_and_a_corrupt_file(tmp_path, caplog):
    root = tmp_path / "afhq"
    make_afhq(root)
    (root / "train" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    with caplog.at_level(logging.WARNING, "colddiff.data"):
        train = data.load("afhq", "train", root=tmp_path, image_size=16)  # root/afhq is searched too
    assert len(train) == 6 and train.n_skipped == 1 and train.skipped[0][0].name == "broken.jpg"
    assert len(warnings_naming(caplog, "broken.jpg")) == 1
    assert sorted(train[i][1] for i in range(6)) == [0, 0, 1, 1, 2, 2] and train.classes == ["cat", "dog", "wild"]
    assert train[0][0].shape == (3, 16, 16)
    assert data.load("afhq", "test", root=root)[0][0].shape == (3, 128, 128)  # default size
    assert [c.ok for c in data.verify("afhq", root=root)] == [None, None]
    with pytest.raises(ConfigError, match="at most 512"):
        data.load("afhq", "train", root=root, image_size=1024)
    with pytest.raises(InputError, match="stargan-v2"):
        data.load("afhq", "train")


# ---------------------------------------------------------------------------- folder:PATH
def test_generic_folder_recursive_formats_labels_and_corrupt_file(tmp_path, caplog):
    top = tmp_path / "pics"
    rng = np.random.default_rng(0)
    (top / "a" / "deeper").mkdir(parents=True)
    (top / "b").mkdir()
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(top / "a" / "one.png")
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(top / "a" / "deeper" / "two.JPG")
    Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8)).save(top / "b" / "three.bmp")
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(top / "b" / "four.webp")
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(top / "loose.png")
    (top / "b" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    (top / "notes.txt").write_text("not an image, ignored")
    (top / "a" / "._one.png").write_bytes(b"macOS resource fork")  # hidden: ignored
    with caplog.at_level(logging.WARNING, "colddiff.data"):
        ds = data.load(f"folder:{top}")
    assert len(ds) == 5 and ds.n_skipped == 1 and len(warnings_naming(caplog, "bad.png")) == 1
    assert ds.classes == ["a", "b"] and sorted(ds.labels) == [-1, 0, 0, 1, 1]
    assert ds.shape == (3, 20, 30) and ds[0][0].shape == (3, 20, 30)
    grey = data.load(f"folder:{top}", image_size=8, channels=1)
    assert all(grey[i][0].shape == (1, 8, 8) for i in range(len(grey)))
    assert len(data.load(f"folder:{top}", "all")) == 5
    with pytest.raises(InputError, match="no 'test' split"):
        data.load(f"folder:{top}", "test")
    assert "2 classes" in data.info(f"folder:{top}")
    Image.new("RGB", (16, 16)).save(top / "b" / "odd.png")
    with pytest.raises(InputError, match="differ in size.*image_size"):
        data.load(f"folder:{top}")
    clone = pickle.loads(pickle.dumps(data.load(f"folder:{top}", image_size=8)))
    assert clone[5][0].shape == (3, 8, 8)


def test_generic_folder_with_split_sub_folders_and_bad_folders(tmp_path):
    for split in ("train", "test"):
        (tmp_path / "s" / split / "x").mkdir(parents=True)
        Image.new("L", (8, 8), 200).save(tmp_path / "s" / split / "x" / "i.png")
    ds = data.load(f"folder:{tmp_path / 's'}", "test")
    assert len(ds) == 1 and ds[0] [0].shape == (1, 8, 8) and ds[0][1] == 0
    with pytest.raises(InputError, match="split sub-folders train, test"):
        data.load(f"folder:{tmp_path / 's'}", "valid")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        data.load(f"folder:{tmp_path / 'empty'}")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.jpg").write_bytes(b"nope")
    with pytest.raises(InputError, match="no usable images"):
        data.load(f"folder:{tmp_path / 'junk'}")
    with pytest.raises(InputError, match="folder not found"):
        data.load(f"folder:{tmp_path / 'nowhere'}")


# ---------------------------------------------------------------------------- mnist-5k, wrong requests
def test_mnist5k_deterministic_order_and_status():
    a, b = data.load("mnist-5k", "train"), data.load("mnist-5k", "train")
    assert torch.equal(a.images[:50], b.images[:50]) and torch.equal(a.labels, b.labels)
    assert (torch.bincount(a.labels) == 450).all()
    assert a.images.min() == -1 and a.images.max() == 1
    row = next(r for r in data.summary() if r["name"] == "mnist-5k")
    assert row["status"] == "present" and row["splits"] == {"train": 4500, "test": 500}
    assert [c.ok for c in data.verify("mnist-5k")] == [True]


def test_wrong_requests_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="known data sets: mnist-5k, mnist, fashion-mnist, cifar10, celeba, afhq"):
        data.load("imagenet")
    with pytest.raises(ConfigError, match=f"folder:{tmp_path}"):
        data.load(str(tmp_path))
    with pytest.raises(ConfigError, match="has splits train, test, not 'valid'"):
        data.load("mnist", "valid")
    with pytest.raises(ConfigError, match="too small"):
        data.load("mnist-5k", image_size=2)
    with pytest.raises(ConfigError, match="impossible for data set 'mnist'.*at most 224"):
        data.load("mnist", image_size=1000)
    with pytest.raises(ConfigError, match="whole number"):
        data.load("cifar10", image_size="32")
    with pytest.raises(ConfigError, match="channels must be 1"):
        data.load("mnist-5k", channels=2)
    with pytest.raises(InputError, match="no direct download"):
        data.fetch("afhq")


def test_summary_and_info_cover_every_data_set(tmp_path):
    rows = data.summary()
    assert [r["name"] for r in rows] == data.names()
    assert {r["status"] for r in rows if r["name"] != "mnist-5k"} == {"missing"}
    for name in data.names():
        text = data.info(name)
        assert name in text and "licence" in text and "looked for in" in text or name == "mnist-5k"
    assert "/usr/share/datasets/fashion-mnist" not in data.info("fashion-mnist")  # patched away in tests
    assert "c58f30108f718f92721af3b95e74349a" in data.info("cifar10")


# ---------------------------------------------------------------------------- the command line
def run(capsys, *argv):
    from colddiff.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_data_list_shows_every_name_with_its_status(capsys, tmp_path):
    files, _ = tiny_idx()
    write_idx(tmp_path / "cache" / "mnist", {k: v for k, v in files.items() if k.startswith("t10k")})
    code, out, _ = run(capsys, "data", "list")
    assert code == 0
    for name in data.names():
        assert re.search(rf"^{re.escape(name)}\s+(present|missing|partial)", out, re.M), name
    assert re.search(r"^mnist\s+partial: test", out, re.M) and re.search(r"^afhq\s+missing", out, re.M)
    assert "folder:PATH" in out and "CC BY-NC 4.0" in out and str(tmp_path / "cache" / "mnist") in out


def test_cli_data_info_verify_download_and_errors(capsys, tmp_path, monkeypatch):
    files, _ = tiny_idx()
    root = tmp_path / "root"
    write_idx(root, files)
    publish(monkeypatch, idx.MNIST, files)
    code, out, _ = run(capsys, "data", "info", "mnist", "--root", str(root))
    assert code == 0 and f"train  found in {root}" in out and "f68b3c2dcbeaaa9fbdd348bbdeb94873" not in out
    code, out, _ = run(capsys, "data", "verify", "mnist", "--root", str(root))
    assert code == 0 and out.count("ok ") == 4
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\x01x", mtime=0))
    code, out, err = run(capsys, "data", "verify", "mnist", "--root", str(root))
    assert code == 2 and "MISMATCH" in out and len(err.strip().splitlines()) == 1
    assert "t10k-labels-idx1-ubyte.gz" in err and "colddiff data download mnist" in err
    code, _, err = run(capsys, "data", "download", "cifar10")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cifar-10-python.tar.gz" in err
    code, _, err = run(capsys, "data", "download", "celeba")
    assert code == 2 and "no direct download" in err
    code, _, err = run(capsys, "data", "verify", "afhq")
    assert code == 2 and "colddiff data info afhq" in err
    code, _, err = run(capsys, "data", "info", "mnist-6k")
    assert code == 2 and "known data sets" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "pics" / "cat").mkdir(parents=True)
    Image.new("RGB", (12, 10)).save(tmp_path / "pics" / "cat" / "a.png")
    code, out, _ = run(capsys, "data", "info", f"folder:{tmp_path / 'pics'}")
    assert code == 0 and "1 image in" in out and "3x10x12" in out
    assert run(capsys, "data")[0] == 2
