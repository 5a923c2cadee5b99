"""Training-time data augmentation, as the authors' loaders do it (``data.augment``).

The authors' training loaders (torchvision transforms on PIL images) use three operations:

* ``flip``: a random horizontal flip with probability ½ (``RandomHorizontalFlip``);
* ``resize-crop``: resize to ``int(1.12·n)`` pixels, then a random n×n crop (the ``Dataset_Aug1``
  loaders of deblurring-, defading-generation-, denoising- and resolution-diffusion-pytorch);
* ``pad-crop``: pad 4 black pixels on every side, then a random n×n crop
  (``RandomCrop(n, padding=4)``, the CIFAR-10 loaders of defading- and resolution-diffusion-pytorch).

Here they act on a batch of n-pixel tensors in [-1, 1] (the data set is already at the run's
size, so ``resize-crop`` enlarges an n-pixel image instead of the original file: bilinear,
a small difference from resizing the original).  A spec is a comma-separated list of
operations, applied crop first, then flip; "" (or ``none``) is off.

Every random number comes from a generator seeded by the batch's place in the data order
(seed, epoch, position, process), so a resumed run draws exactly the flips and crops it
would have drawn without the interruption.  Evaluation, restoration and the sample grids
never augment: only the training stream does.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from ..errors import ConfigError

OPS = ("flip", "resize-crop", "pad-crop")
RESIZE_FACTOR = 1.12   # the authors' Resize((int(image_size * 1.12),) * 2) before RandomCrop
PAD = 4                # the authors' RandomCrop(image_size, padding=4)
# the authors' CelebA super-resolution and inpainting *test* loaders (Dataset_Aug1, DatasetCelebA): their training
# transform, Resize(1.12 n) + RandomCrop(n) + RandomHorizontalFlip in that order (colddiff.paper.AUTHORS_TEST_SETS)
RANDOM_TEST_CROP = ("resize-crop", "flip")


def parse(spec: str) -> Tuple[str, ...]:
    """The operations of an ``augment`` spec, checked; a one-line ConfigError names a wrong one."""
    if not isinstance(spec, str):
        raise ConfigError(f"data.augment must be a string such as \"flip\" or \"resize-crop,flip\", got {spec!r}")
    ops = tuple(p.strip() for p in spec.split(",") if p.strip() and p.strip() != "none")
    for op in ops:
        if op not in OPS:
            raise ConfigError(f"unknown augmentation {op!r} in data.augment={spec!r}; use a comma-separated "
                              f"list of {', '.join(OPS)} (or \"\" for none)")
    if "resize-crop" in ops and "pad-crop" in ops:
        raise ConfigError(f"data.augment={spec!r}: choose one crop, resize-crop or pad-crop")
    return ops


def _key(seed: int, epoch: int, position: int, rank: int) -> int:
    return (((int(seed) * 1_000_003 + int(epoch)) * 1_000_033 + int(position)) * 257 + int(rank)) % (2**63 - 1)


def batch_generator(seed: int, epoch: int, position: int, rank: int = 0) -> torch.Generator:
    """The generator of one batch's augmentation, a function of its place in the data order only."""
    return torch.Generator().manual_seed(_key(seed, epoch, position, rank))


def item_key(seed: int, epoch: int, place: int) -> int:
    """The seed of one item's native-scale random crop (folder data sets of photos larger than the
    run's size, ``ImageFiles``): a function of the item's place in the data order only, so a resumed
    run cuts the same crops."""
    return _key(seed, epoch, place, 0x5EED)


def _random_crop(x: torch.Tensor, n: int, m: int, generator: torch.Generator) -> torch.Tensor:
    """A random n×m crop of every image of ``x`` (B, C, H', W'), offsets uniform per image."""
    B, _, H, W = x.shape
    oy = torch.randint(0, H - n + 1, (B,), generator=generator)
    ox = torch.randint(0, W - m + 1, (B,), generator=generator)
    return torch.stack([x[b, :, oy[b]:oy[b] + n, ox[b]:ox[b] + m] for b in range(B)])


def apply(x: torch.Tensor, ops: Tuple[str, ...], generator: torch.Generator) -> torch.Tensor:
    """Augment a batch (B, C, H, W) in [-1, 1]: the crop of ``ops`` (if any), then ``flip``."""
    if not ops:
        return x
    B, C, H, W = x.shape
    dt = x.dtype
    if "resize-crop" in ops:
        big = F.interpolate(x.float(), size=(int(H * RESIZE_FACTOR), int(W * RESIZE_FACTOR)), mode="bilinear",
                            align_corners=False).clamp(-1, 1)
        x = _random_crop(big, H, W, generator).to(dt)
    elif "pad-crop" in ops:
        x = _random_crop(F.pad(x, (PAD, PAD, PAD, PAD), value=-1.0), H, W, generator)  # black, as torchvision pads
    if "flip" in ops:
        flip = torch.rand(B, generator=generator) < 0.5
        x = torch.where(flip.view(B, 1, 1, 1).to(x.device), x.flip(-1), x)
    return x.contiguous()


def enlarge_center_crop(x: torch.Tensor) -> torch.Tensor:
    """The authors' blur and super-resolution *test* loaders: resize to int(1.12·n) (bilinear), then the
    centre n×n crop (torchvision's CenterCrop offset, round((n' - n) / 2)).  Like ``resize-crop`` it
    enlarges the n-pixel image, not the original file."""
    B, C, H, W = x.shape
    big = F.interpolate(x.float(), size=(int(H * RESIZE_FACTOR), int(W * RESIZE_FACTOR)), mode="bilinear",
                        align_corners=False).clamp(-1, 1)
    oy, ox = int(round((big.shape[-2] - H) / 2)), int(round((big.shape[-1] - W) / 2))
    return big[:, :, oy:oy + H, ox:ox + W].to(x.dtype).contiguous()
