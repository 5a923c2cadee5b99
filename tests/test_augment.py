"""Training-time augmentation (data.augment): the authors' flips and crops, seeded by the data position."""
from pathlib import Path

import pytest
import torch

from colddiff.cli import main
from colddiff.config import RunConfig
from colddiff.presets import PRESETS, preset
from colddiff.data import augment
from colddiff.errors import ConfigError
from colddiff.training import BatchStream, resume_config, train

from conftest import images


def test_specs_are_checked_with_one_clear_line(capsys):
    assert augment.parse("") == () and augment.parse("none") == ()
    assert augment.parse("resize-crop, flip") == ("resize-crop", "flip")
    with pytest.raises(ConfigError, match="unknown augmentation 'rotate'"):
        augment.parse("flip,rotate")
    with pytest.raises(ConfigError, match="choose one crop"):
        augment.parse("resize-crop,pad-crop")
    assert main(["train", "--preset", "mnist5k-blur", "--set", "data.augment=mirror", "--out", "/nonexistent/x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown augmentation 'mirror'" in err


def test_flip_mirrors_about_half_of_the_images_and_nothing_else():
    x = images(400, 1, 8, dtype=torch.float32)
    y = augment.apply(x, ("flip",), torch.Generator().manual_seed(0))
    same = (y == x).flatten(1).all(1)
    mirrored = (y == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 150 < int(mirrored.sum()) < 250


def test_resize_crop_and_pad_crop_keep_the_size_and_shift_the_content():
    x = images(64, 3, 32, dtype=torch.float32)
    g = torch.Generator().manual_seed(1)
    rc = augment.apply(x, ("resize-crop",), g)
    assert rc.shape == x.shape and rc.dtype == x.dtype and rc.min() >= -1 and rc.max() <= 1
    # the 1.12x enlargement (32 -> 35 px) and a crop: never the identity on random images
    assert not torch.equal(rc, x)
    pc = augment.apply(x, ("pad-crop",), g)
    assert pc.shape == x.shape
    shifted = ~(pc == x).flatten(1).all(1)
    assert int(shifted.sum()) > 48  # offsets 0..8 per axis: (4, 4) keeps the image in 1 case of 81
    # a shifted image shows black padding (-1) along at least one border, in every channel
    borders = torch.stack([pc[..., 0, :].eq(-1).all(-1), pc[..., -1, :].eq(-1).all(-1),
                           pc[..., :, 0].eq(-1).all(-1), pc[..., :, -1].eq(-1).all(-1)], -1).all(1).any(-1)
    assert bool(borders[shifted].all())


def test_a_batch_is_augmented_by_its_place_in_the_data_order():
    ds = torch.utils.data.TensorDataset(images(40, 1, 8, dtype=torch.float32), torch.zeros(40))
    a = BatchStream(ds, 8, seed=3, augment="resize-crop,flip")
    batches = [a.next() for _ in range(7)]  # crosses an epoch boundary (5 batches per epoch)
    b = BatchStream(ds, 8, seed=3, augment="resize-crop,flip")
    b.epoch, b.position = 1, 8  # what a resumed run restores: the 7th batch
    assert torch.equal(b.next(), batches[6])
    plain = BatchStream(ds, 8, seed=3)
    assert not torch.equal(plain.next(), batches[0])
    assert len({bytes(x.numpy().tobytes()) for x in batches}) == 7


def test_resume_with_augmentation_is_bit_identical(tmp_path):
    sets = ["train.steps=8", "train.batch_size=8", "train.grad_accum=1", "train.checkpoint_every=4",
            "train.sample_every=0", "train.log_every=4", "model.dim=8", "model.dim_mults=1,2", "train.lr=1e-3",
            "data.augment=resize-crop,flip"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        full = train(preset("mnist5k-blur").override(sets), tmp_path / "full", progress=False)
        train(preset("mnist5k-blur").override(sets + ["train.steps=4"]), tmp_path / "half", progress=False)
        resumed = train(resume_config(tmp_path / "half", ["train.steps=8"]), tmp_path / "half", resume=True,
                        progress=False)
        no_aug = train(preset("mnist5k-blur").override(sets + ["data.augment="]), tmp_path / "plain",
                       progress=False)
    finally:
        torch.set_num_threads(threads)
    assert resumed["weights_sha256"] == full["weights_sha256"]
    assert no_aug["weights_sha256"] != full["weights_sha256"]  # the augmentation did change the training data
    assert RunConfig.load(Path(tmp_path) / "half" / "config.toml").data.augment == "resize-crop,flip"


def test_the_paper_presets_augment_where_the_authors_did():
    on = {n: p.data.augment for n, p in PRESETS.items() if p.data.augment}
    assert on["celeba-blur"] == on["cifar10-sr"] == on["celeba-noise"] == on["afhq-noise"] == "resize-crop,flip"
    assert on["cifar10-inpaint"] == "pad-crop,flip"
    # the authors' snowification/decolor loaders only centre-crop; their MNIST inpainting loader only resizes
    for name in ("cifar10-snow", "celeba-snow", "cifar10-desaturate", "celeba-desaturate", "mnist-inpaint", "mnist-sr"):
        assert not PRESETS[name].data.augment, name
