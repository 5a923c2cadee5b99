"""The classifier back end: training on a labelled set, the safetensors cache, and its errors.

The fast tests train on tiny synthetic folders whose classes are a bright square in
different corners (separable after a few steps); one test trains on the real mnist-5k.
"""
import json
import logging
import time

import numpy as np
import pytest
import torch
from PIL import Image

from colddiff import classifier as clf_mod
from colddiff import data, metrics
from colddiff.classifier import Classifier, cache_path, get_classifier, random_shift, train_classifier
from colddiff.errors import ConfigError, InputError

SIZE = 16
CORNERS = {"a": (1, 1), "b": (1, 10), "c": (10, 5)}  # top-left of each class's 5x5 square


@pytest.fixture(autouse=True)
def quick(tmp_path, monkeypatch):
    """Cache in tmp; 60 optimizer steps for the toy sets (the squares are separable long
    before); one thread, since tiny convolutions gain nothing from two, and on a busy machine
    two threads spend most of their time waiting for each other."""
    monkeypatch.setenv("COLDDIFF_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(clf_mod, "MIN_STEPS", 60)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def squares(folder, per_class=20, seed=0, classes=CORNERS):
    """Grey PNGs in class sub-folders: dim noise plus a bright square whose place is the class."""
    rng = np.random.default_rng(seed)
    for name in classes:
        (folder / name).mkdir(parents=True, exist_ok=True)
        r, c = CORNERS[name]
        for i in range(per_class):
            a = rng.integers(0, 60, (SIZE, SIZE), dtype=np.uint8)
            dr, dc = rng.integers(0, 2, 2)
            a[r + dr:r + dr + 5, c + dc:c + dc + 5] = rng.integers(200, 256)
            Image.fromarray(a).save(folder / name / f"{i:03d}.png")
    return f"folder:{folder}"


@pytest.fixture
def folder(tmp_path):
    return squares(tmp_path / "shapes")


@pytest.fixture
def trained(folder):
    return get_classifier(folder, SIZE, 1, progress=False)


def test_trains_once_then_loads_from_the_cache(folder, tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.INFO, "colddiff.classifier"):
        clf = get_classifier(folder, SIZE, 1, progress=False)
    assert any(f"no cached classifier for {folder}" in r.message and "training one" in r.message
               for r in caplog.records)
    assert isinstance(clf, Classifier) and clf.name == "classifier"
    assert clf.num_classes == 3 and clf.classes == ["a", "b", "c"] and clf.dim == 128
    assert clf.accuracy >= 0.9 and clf.meta["accuracy_on"] == "6 train images held out"
    path = cache_path(folder, SIZE, 1)
    assert path.is_file() and path.parent == tmp_path / "cache" / "classifiers"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp")]  # written atomically

    def no_training(*a, **kw):
        raise AssertionError("a cached classifier must not be retrained")

    monkeypatch.setattr(clf_mod, "train_classifier", no_training)
    again = get_classifier(folder, SIZE, 1, progress=False)
    assert again.accuracy == clf.accuracy and again.data_name == folder
    x = data.load(folder, image_size=SIZE, channels=1)[0][0][None]
    assert torch.equal(again.features(x), clf.features(x))


def test_cache_file_is_plain_safetensors_with_json_metadata(trained):
    from safetensors import safe_open
    with safe_open(str(cache_path(trained.data_name, SIZE, 1)), framework="pt") as f:
        meta = json.loads(f.metadata()["colddiff"])
        assert all(isinstance(f.get_tensor(k), torch.Tensor) for k in f.keys())
    assert meta["format"] == "colddiff-classifier/1" and meta["data_name"] == trained.data_name
    assert (meta["image_size"], meta["channels"], meta["num_classes"]) == (SIZE, 1, 3)
    assert meta["accuracy"] == trained.accuracy and meta["epochs"] == clf_mod.default_epochs(54) == 60
    assert meta["architecture"] == dict(name="cnn4", width=16, dim=128, dropout=0.3, work_size=SIZE)


def test_features_and_predictions(trained, folder):
    ds = data.load(folder, image_size=SIZE, channels=1)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor([ds[i][1] for i in range(len(ds))])
    f = trained.features(x)
    assert f.shape == (len(ds), 128) and f.dtype == torch.float64 and f.device.type == "cpu"
    assert (f >= 0).all()  # post-ReLU features
    p = trained.predict_proba(x)
    assert p.shape == (len(ds), 3) and p.dtype == torch.float32
    assert torch.allclose(p.sum(1), torch.ones(len(ds)), atol=1e-5)
    pred = trained.predict(x)
    assert pred.dtype == torch.int64 and torch.equal(pred, p.argmax(1))
    assert (pred == y).float().mean() >= 0.9
    # batching does not change the answer
    trained.batch_size = 7
    assert torch.allclose(trained.features(x), f, atol=1e-5)
    assert trained.features(x[:0]).shape == (0, 128)
    with pytest.raises(InputError, match=r"takes images shaped \(N, 1, 16, 16\), got \(2, 3, 16, 16\)"):
        trained.features(torch.zeros(2, 3, SIZE, SIZE))


def test_same_seed_same_weights_and_global_rng_untouched(folder):
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = train_classifier(folder, SIZE, 1, epochs=2, progress=False, seed=0)
    assert torch.equal(torch.rand(3), before)  # training forked the global RNG
    b = train_classifier(folder, SIZE, 1, epochs=2, progress=False, seed=0)
    c = train_classifier(folder, SIZE, 1, epochs=2, progress=False, seed=1)
    sa, sb, sc = (m.net.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_test_split_is_used_and_its_classes_matched_by_name(tmp_path):
    top = tmp_path / "split"
    squares(top / "train", per_class=16)
    squares(top / "test", per_class=4, seed=1, classes=("b", "c"))  # no "a": indices would shift
    clf = train_classifier(f"folder:{top}", SIZE, 1, progress=False)
    assert clf.meta["accuracy_on"] == "test split" and clf.meta["n_test"] == 8
    assert clf.meta["n_train"] == 48 and clf.accuracy >= 0.75


def test_corrupt_cache_is_one_clear_error_and_retrain_replaces_it(folder):
    path = cache_path(folder, SIZE, 1)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(InputError) as e:
        get_classifier(folder, SIZE, 1, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and str(path.name) in msg and "delete the file: the next evaluation trains a new one" in msg
    clf = get_classifier(folder, SIZE, 1, progress=False, retrain=True)
    assert clf.accuracy >= 0.9 and get_classifier(folder, SIZE, 1).accuracy == clf.accuracy


def test_cache_for_other_settings_is_retrained(trained, monkeypatch, caplog):
    folder = trained.data_name
    new_arch = dict(clf_mod.architecture(SIZE, 1), dropout=0.1)
    monkeypatch.setattr(clf_mod, "architecture", lambda image_size, channels: new_arch)
    calls = []
    real = clf_mod.train_classifier
    monkeypatch.setattr(clf_mod, "train_classifier", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    with caplog.at_level(logging.INFO, "colddiff.classifier"):
        clf = get_classifier(folder, SIZE, 1, progress=False)
    assert calls == [1] and clf.meta["architecture"]["dropout"] == 0.1
    assert any("other settings (architecture)" in r.message for r in caplog.records)
    assert get_classifier(folder, SIZE, 1).meta["architecture"]["dropout"] == 0.1  # the file was replaced


def test_unlabelled_data_is_a_config_error(tmp_path):
    (tmp_path / "flat").mkdir()
    for i in range(4):
        Image.new("L", (SIZE, SIZE), 40 * i).save(tmp_path / "flat" / f"{i}.png")
    with pytest.raises(ConfigError, match="needs a labelled data set.*--fid inception or --fid none"):
        get_classifier(f"folder:{tmp_path / 'flat'}", SIZE, 1, progress=False)
    (tmp_path / "one" / "only").mkdir(parents=True)
    Image.new("L", (SIZE, SIZE)).save(tmp_path / "one" / "only" / "x.png")
    Image.new("L", (SIZE, SIZE)).save(tmp_path / "one" / "only" / "y.png")
    Image.new("L", (SIZE, SIZE)).save(tmp_path / "one" / "only" / "z.png")
    with pytest.raises(ConfigError, match="at least 2 classes"):
        train_classifier(f"folder:{tmp_path / 'one'}", SIZE, 1, progress=False)


def test_cache_paths(tmp_path):
    root = tmp_path / "cache" / "classifiers"
    assert cache_path("mnist-5k", 28, 1) == root / "mnist-5k-28px-1c.safetensors"
    assert cache_path("cifar10", 32, 3) == root / "cifar10-32px-3c.safetensors"
    p = cache_path(f"folder:{tmp_path}/my pics/", 64, 3)
    assert p.parent == root and p.name.startswith("folder-my-pics-") and p.name.endswith("-64px-3c.safetensors")
    # the same folder written differently is the same file; another folder of that name is not
    assert cache_path(f"folder:{tmp_path}/x/../my pics", 64, 3) == p
    assert cache_path(f"folder:{tmp_path}/other/my pics", 64, 3) != p


def test_random_shift_moves_each_image_by_at_most_s():
    x = -torch.ones(64, 1, 9, 9)
    x[:, :, 4, 4] = 1
    y = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.equal(y.sum((1, 2, 3)), x.sum((1, 2, 3)))  # edges are background
    rows, cols = (y[:, 0] == 1).nonzero()[:, 1:].T
    assert rows.sub(4).abs().max() == 2 and cols.sub(4).abs().max() == 2  # all shifts happen
    assert len({(int(r), int(c)) for r, c in zip(rows, cols)}) > 10


def test_metrics_extractor_and_fid_on_classifier_features(trained, folder):
    ext = metrics.get_extractor("classifier", folder, SIZE, 1, progress=False)
    assert ext.name == "classifier" and ext.dim == 128 and ext.accuracy == trained.accuracy
    ds = data.load(folder, image_size=SIZE, channels=1)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor([ds[i][1] for i in range(len(ds))])
    same = metrics.fid(ext.features(x[::2]), ext.features(x[1::2]), ext.name, ext.accuracy)
    other = metrics.fid(ext.features(x[y == 0]), ext.features(x[y == 1]), ext.name, ext.accuracy)
    assert same.small and same.n == 30 and same.accuracy == trained.accuracy
    assert 0 <= same.value < other.value  # one class against another is far; halves of one set are near


def test_real_mnist5k_classifier_reaches_95_percent():
    """The real embedded digits; 4 epochs instead of the default 10 to keep the suite quick
    (measured: 97.8% with one thread, 98.2% with two, 19-26 s on a busy 2-core machine; the
    default 10 epochs reach 98.4% in 20 s on two free cores)."""
    t = time.time()
    clf = train_classifier("mnist-5k", 28, 1, epochs=4, progress=False)
    assert clf.accuracy >= 0.95, clf
    assert clf.meta["n_train"] == 4500 and clf.meta["n_test"] == 500 and clf.meta["accuracy_on"] == "test split"
    assert clf.classes == list("0123456789") and clf.num_classes == 10
    assert time.time() - t < 300
