"""The FID Inception-v3 without its real weights (they cannot be downloaded here): architecture
and parameter count, the feature pipeline on a randomly initialised network, loading a weight
file strictly, and every way fetching or reading the weights can fail, with the network mocked
off (only file:// URLs open)."""
import hashlib
import os
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from torch import nn

from colddiff import download, inception
from colddiff.download import FileSpec
from colddiff.errors import InputError
from colddiff.inception import (WEIGHTS_NAME, WEIGHTS_URL, FIDInceptionV3, InceptionFeatures, load_inception,
                                weights_path)

REAL_URLOPEN = download.urlopen


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private cache, no weights override, and no network: only file:// URLs open."""
    monkeypatch.setenv("COLDDIFF_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv(inception.ENV_VAR, raising=False)

    def offline(request, *a, **kw):
        url = request.full_url if hasattr(request, "full_url") else request
        if url.startswith("file://"):
            return REAL_URLOPEN(request, *a, **kw)
        raise URLError("[Errno -3] Temporary failure in name resolution (network mocked off)")

    monkeypatch.setattr(download, "urlopen", offline)
    return tmp_path


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on the 2 cores the tests share, two OpenMP threads that spin-wait for
    each other make a forward pass up to 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def net(one_thread):
    """A random network whose features are O(1) (He init) and whose BatchNorm statistics are not
    the defaults, so that a buffer lost on the way through a file would change the features."""
    torch.manual_seed(0)
    model = FIDInceptionV3()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.8, 1.2)
                m.bias.uniform_(-0.1, 0.1)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.8, 1.2)
                m.num_batches_tracked.fill_(7)
    return model.eval()


@pytest.fixture(scope="module")
def weights_file(net, tmp_path_factory):
    """The random network's state dict in PyTorch's legacy (pre-1.6, not zip) format, which the
    published 2019 file predates the zip format in; ``weights_only`` loading must read it."""
    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(net.state_dict(), path, _use_new_zipfile_serialization=False)
    return path


@pytest.fixture(scope="module")
def gray():
    """Two 28x28 grey images in [-1, 1] (MNIST-sized)."""
    return torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.fixture(scope="module")
def gray_features(net, gray):
    # batch_size=1 keeps every forward the same shape: oneDNN's first call per shape is slow
    return InceptionFeatures(net, batch_size=1).features(gray)


class Payload:
    """Stands for arbitrary code in a pickle."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------- architecture
def test_parameter_count_matches_the_architecture(net):
    def conv(i, o, kh, kw=None):   # BasicConv2d: conv without bias + BatchNorm weight and bias
        return i * o * kh * (kw or kh) + 2 * o

    def block_a(i, pool):
        return (conv(i, 64, 1) + conv(i, 48, 1) + conv(48, 64, 5) + conv(i, 64, 1) + conv(64, 96, 3)
                + conv(96, 96, 3) + conv(i, pool, 1))

    def block_c(i, c):
        return (conv(i, 192, 1) + conv(i, c, 1) + conv(c, c, 1, 7) + conv(c, 192, 7, 1) + conv(i, c, 1)
                + 3 * conv(c, c, 7, 1) + conv(c, 192, 1, 7) + conv(i, 192, 1))

    def block_e(i):
        return (conv(i, 320, 1) + conv(i, 384, 1) + 2 * conv(384, 384, 1, 3) + conv(i, 448, 1)
                + conv(448, 384, 3) + 2 * conv(384, 384, 1, 3) + conv(i, 192, 1))

    stem = conv(3, 32, 3) + conv(32, 32, 3) + conv(32, 64, 3) + conv(64, 80, 1) + conv(80, 192, 3)
    mixed_5 = block_a(192, 32) + block_a(256, 64) + block_a(288, 64)
    mixed_6a = conv(288, 384, 3) + conv(288, 64, 1) + conv(64, 96, 3) + conv(96, 96, 3)
    mixed_6 = block_c(768, 128) + 2 * block_c(768, 160) + block_c(768, 192)
    mixed_7a = (conv(768, 192, 1) + conv(192, 320, 3) + conv(768, 192, 1) + 2 * conv(192, 192, 1, 7)
                + conv(192, 192, 3))
    body = stem + mixed_5 + mixed_6a + mixed_6 + mixed_7a + block_e(1280) + block_e(2048)
    # torchvision's inception_v3(aux_logits=False) with its 1000 classes has 23,834,568 parameters;
    # its auxiliary classifier adds 3,326,696 more (27,161,264 in all, torchvision's published count)
    assert body + 2048 * 1000 + 1000 == 23_834_568
    assert body + 2048 * 1000 + 1000 + conv(768, 128, 1) + conv(128, 768, 5) + 768 * 1000 + 1000 == 27_161_264
    # the FID network: the same body with the 2015 graph's 1008-class classifier
    assert sum(p.numel() for p in net.parameters()) == body + 2048 * 1008 + 1008 == 23_850_960


def test_state_dict_keys_follow_torchvision_naming(net):
    state = net.state_dict()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert len(state) == 566   # 94 conv weights, 94 x 5 BatchNorm entries, fc weight and bias
    assert sum(k.endswith(".bn.num_batches_tracked") for k in state) == 94
    assert not any("AuxLogits" in k for k in state)
    assert all(k.endswith((".conv.weight", ".bn.weight", ".bn.bias", ".bn.running_mean", ".bn.running_var",
                           ".bn.num_batches_tracked")) for k in state if not k.startswith("fc."))
    for key, shape in {"Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3), "Conv2d_1a_3x3.bn.running_var": (32,),
                       "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
                       "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
                       "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
                       "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
                       "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
                       "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
                       "Mixed_7a.branch7x7x3_4.bn.running_mean": (192,),
                       "Mixed_7b.branch3x3_2b.conv.weight": (384, 384, 3, 1),
                       "Mixed_7c.branch3x3dbl_3a.conv.weight": (384, 384, 1, 3),
                       "Mixed_7c.branch_pool.bn.bias": (192,),
                       "fc.weight": (1008, 2048), "fc.bias": (1008,)}.items():
        assert shapes[key] == shape, key
    assert all(m.eps == 0.001 for m in net.modules() if isinstance(m, nn.BatchNorm2d))


def test_tensorflow_pooling_quirks():
    # average pools leave the zero padding out of the mean: a constant image stays constant
    assert torch.equal(inception._tf_avg_pool(torch.ones(1, 1, 4, 4)), torch.ones(1, 1, 4, 4))
    model = FIDInceptionV3()
    assert model.Mixed_7c.max_pool and not model.Mixed_7b.max_pool
    torch.manual_seed(0)
    block = inception.InceptionE(4, max_pool=True).eval()
    x = torch.randn(1, 4, 3, 3)
    with torch.no_grad():
        a = block(x)
        block.max_pool = False
        b = block(x)
    assert a.shape == (1, 2048, 3, 3)
    assert torch.equal(a[:, :-192], b[:, :-192]) and not torch.equal(a[:, -192:], b[:, -192:])


# ---------------------------------------------------------------------------- features
def test_forward_and_features_shapes(net, gray, gray_features):
    with torch.no_grad():
        out = net(torch.rand(1, 3, 299, 299, generator=torch.Generator().manual_seed(2)) * 2 - 1)
    assert out.shape == (1, 2048) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert gray_features.shape == (2, 2048) and gray_features.dtype == torch.float64
    assert gray_features.device.type == "cpu" and not gray_features.requires_grad
    assert torch.isfinite(gray_features).all() and (gray_features >= 0).all()   # pooled ReLU outputs
    assert 0.01 < gray_features.std() < 100 and not torch.equal(gray_features[0], gray_features[1])
    extractor = InceptionFeatures(net)
    assert (extractor.name, extractor.dim, extractor.accuracy, extractor.batch_size) == ("inception", 2048, None, 50)


def test_features_reject_wrong_input(net):
    extractor = InceptionFeatures(net, batch_size=2)
    for bad, text in ((torch.zeros(1, 2, 8, 8), "1 or 3"), (torch.zeros(3, 8, 8), r"\(3, 8, 8\)"),
                      (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "float"), ([[0.0]], "list")):
        with pytest.raises(InputError, match=text):
            extractor.features(bad)
    empty = extractor.features(torch.zeros(0, 3, 32, 32))
    assert empty.shape == (0, 2048) and empty.dtype == torch.float64
    with pytest.raises(ValueError, match="batch_size"):
        InceptionFeatures(net, batch_size=0)


# ---------------------------------------------------------------------------- weight files
def test_weight_file_loads_strictly_and_reproduces_the_features(net, weights_file, gray, gray_features):
    extractor = load_inception(path=weights_file, download=False)
    assert isinstance(extractor, InceptionFeatures) and isinstance(extractor.net, FIDInceptionV3)
    loaded = extractor.net.state_dict()
    assert loaded.keys() == net.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in net.state_dict().items())
    extractor.net.train()   # features() must use the stored BatchNorm statistics regardless
    extractor.batch_size = 1
    assert torch.equal(extractor.features(gray[:1]), gray_features[:1])
    assert not extractor.net.training


def test_weights_without_batchnorm_counters_load_too(net):
    """Files written by PyTorch before 0.4.1 have no ``num_batches_tracked``; the published file has
    them (pytorch-fid issue #34 shows PyTorch 0.4.0 rejecting them as unexpected keys)."""
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    fresh = FIDInceptionV3()
    fresh.load_state_dict(inception._fit(fresh, state, Path("old.pth")), strict=True)
    assert torch.equal(fresh.Mixed_7c.branch_pool.bn.running_var, net.Mixed_7c.branch_pool.bn.running_var)


def test_wrong_files_give_one_clear_line(tmp_path):
    keyed = tmp_path / "other-net.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 5, 5), "classifier.weight": torch.zeros(2)}, keyed)
    with pytest.raises(InputError) as e:
        load_inception(path=keyed)
    msg = str(e.value)
    assert "\n" not in msg and str(keyed) in msg and WEIGHTS_URL in msg
    assert "471 missing keys" in msg and "1 unexpected keys (e.g. classifier.weight)" in msg
    assert "Conv2d_1a_3x3.conv.weight (32, 3, 5, 5) instead of (32, 3, 3, 3)" in msg

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(InputError, match="cannot read the Inception weights .*garbage.pth") as e:
        load_inception(path=garbage)
    assert "\n" not in str(e.value)

    code = tmp_path / "code.pth"
    torch.save({"x": Payload()}, code)   # a pickle naming code is refused, never unpickled
    with pytest.raises(InputError, match="cannot read the Inception weights .*code.pth") as e:
        load_inception(path=code)
    assert "\n" not in str(e.value)

    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(InputError, match="not a PyTorch state dict"):
        load_inception(path=listed)

    with pytest.raises(InputError, match="is a folder"):
        load_inception(path=tmp_path)


def test_a_file_with_the_published_name_must_have_the_published_checksum(tmp_path):
    fake = tmp_path / WEIGHTS_NAME
    fake.write_bytes(b"not the weights")
    with pytest.raises(InputError) as e:
        load_inception(path=fake)
    msg = str(e.value)
    assert "\n" not in msg and str(fake) in msg and "15 bytes instead of 95,628,359" in msg and WEIGHTS_URL in msg


# ---------------------------------------------------------------------------- locations and downloads
def test_weights_path_default_and_override(tmp_path, monkeypatch):
    assert weights_path() == tmp_path / "cache" / "weights" / WEIGHTS_NAME
    monkeypatch.setenv(inception.ENV_VAR, str(tmp_path / "elsewhere" / "inception.pth"))
    assert weights_path() == tmp_path / "elsewhere" / "inception.pth"


def test_missing_weights_offline_say_where_to_put_them_and_where_to_get_them(tmp_path):
    for kwargs, reason in (({}, "network mocked off"), ({"download": False}, "download=False")):
        with pytest.raises(InputError) as e:
            load_inception(progress=False, **kwargs)
        msg = str(e.value)
        assert "\n" not in msg and reason in msg
        assert str(weights_path()) in msg and WEIGHTS_URL in msg and WEIGHTS_NAME in msg
        assert "--fid classifier" in msg and "offline" in msg
    assert not weights_path().exists()
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))


def test_a_download_with_the_wrong_checksum_is_rejected_and_leaves_no_file(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / WEIGHTS_NAME).write_bytes(b"a captive portal's login page" * 100)
    monkeypatch.setattr(inception, "MIRRORS", ((mirror / WEIGHTS_NAME).as_uri(),))
    with pytest.raises(InputError) as e:
        load_inception(progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "checksum mismatch" in msg and "rejected" in msg
    assert str(weights_path()) in msg and WEIGHTS_URL in msg
    assert not weights_path().exists() and os.listdir(weights_path().parent) == []


def test_download_from_a_mirror_is_checked_and_loaded(net, weights_file, tmp_path, monkeypatch):
    monkeypatch.setattr(inception, "MIRRORS", ("https://example.org/unreachable.pth", weights_file.as_uri()))
    monkeypatch.setattr(inception, "SPEC", FileSpec(WEIGHTS_NAME, sha256=sha256(weights_file),
                                                    size=weights_file.stat().st_size))
    extractor = load_inception(progress=False)
    assert weights_path().is_file() and sha256(weights_path()) == sha256(weights_file)
    assert torch.equal(extractor.net.fc.weight, net.fc.weight)
    # a second call uses the file now present (it would fail to download: the mirror is gone)
    monkeypatch.setattr(inception, "MIRRORS", ())
    assert torch.equal(load_inception(progress=False).net.Conv2d_1a_3x3.conv.weight, net.Conv2d_1a_3x3.conv.weight)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_features_on_cuda_match_the_cpu(net, gray, gray_features):
    import copy

    extractor = InceptionFeatures(copy.deepcopy(net), device="cuda", batch_size=2)
    out = extractor.features(gray)
    assert out.device.type == "cpu" and out.dtype == torch.float64
    # cuDNN may use TF32 for float32 convolutions (PyTorch's default, as under pytorch-fid)
    torch.testing.assert_close(out, gray_features, rtol=2e-2, atol=2e-2)


# ---------------------------------------------------------------------------- colddiff weights, --fid auto
def test_weights_info_says_where_the_file_goes_and_whether_it_is_there(weights_file, monkeypatch, capsys):
    from colddiff.cli import main

    assert main(["weights", "info"]) == 0
    out = capsys.readouterr().out
    assert WEIGHTS_NAME in out and "missing" in out and inception.WEIGHTS_SHA256 in out and inception.ENV_VAR in out
    monkeypatch.setenv(inception.ENV_VAR, str(weights_file))
    assert main(["weights", "info"]) == 0
    assert "present" in capsys.readouterr().out


def test_weights_verify_checks_the_file_in_one_line(weights_file, tmp_path, monkeypatch, capsys):
    from colddiff.cli import main

    assert main(["weights", "verify"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing" in err and inception.WEIGHTS_URL in err
    assert main(["weights", "verify", "--path", str(weights_file)]) == 0
    assert "keys and shapes checked" in capsys.readouterr().out
    junk = tmp_path / WEIGHTS_NAME
    junk.write_bytes(b"not the weights")
    assert main(["weights", "verify", "--path", str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not the published" in err


def test_fid_auto_is_inception_whenever_the_weights_are_in_place(weights_file, monkeypatch):
    from colddiff import metrics

    assert metrics.resolve_backend("auto", True) == "classifier"
    assert metrics.resolve_backend("auto", False) == "none"
    monkeypatch.setenv(inception.ENV_VAR, str(weights_file))
    assert metrics.resolve_backend("auto", True) == metrics.resolve_backend("auto", False) == "inception"
    assert metrics.resolve_backend("classifier", True) == "classifier"  # an explicit choice stays
