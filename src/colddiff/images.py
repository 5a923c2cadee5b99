"""Reading images into [-1, 1] tensors and writing PNG strips and grids.

Files are always written atomically (a temporary file in the same folder, then a rename),
so an interrupted run never leaves a half-written PNG behind.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from .errors import InputError
from .fileio import atomic_path
from .validate import whole

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
PathLike = Union[str, os.PathLike]
# what PIL raises for a file that is not a (complete, safe) image
DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


GRAY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
# EXIF Orientation values (tag 0x0112) that turn the picture by a quarter: width and height swap
EXIF_ORIENTATION = 0x0112
QUARTER_TURNS = (5, 6, 7, 8)


def upright(im: Image.Image) -> Image.Image:
    """A decoded image turned and mirrored as its EXIF Orientation tag says (a phone's portrait photo
    comes out portrait), with the tag dropped; an image without the tag is returned unchanged.

    Every reader of image files in colddiff goes through here (read_image for restore, degrade and
    the demo; the folder data sets' decode), so they all see the picture the way a viewer shows it."""
    return ImageOps.exif_transpose(im) if _orientation(im) in range(2, 9) else im


def upright_size(im: Image.Image) -> Tuple[int, int]:
    """(width, height) of an opened image as :func:`upright` will return it, from the header only."""
    turned = _orientation(im) in QUARTER_TURNS
    return (im.height, im.width) if turned else (im.width, im.height)


def _orientation(im: Image.Image) -> int:
    """The EXIF Orientation tag (1 = upright, also when the file has none or a malformed EXIF block)."""
    try:
        return int(im.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:
        return 1


def high_depth_to_float(img: Image.Image) -> Image.Image:
    """A 16- or 32-bit grayscale image as a mode-"F" image on the 0..255 scale of 8-bit images.

    PIL's ``convert("L")`` clips such values at 255, which turns a 16-bit PNG almost all white;
    here 16-bit files are divided by 65535/255 (32-bit "I" images holding values above 255 too).
    """
    if not img.mode.startswith("I"):
        return img
    a = np.asarray(img, dtype=np.float64)
    full = 65535.0 if img.mode.startswith("I;16") or (a.size and a.max() > 255) else 255.0
    return Image.fromarray((np.clip(a, 0, full) * (255.0 / full)).astype(np.float32), mode="F")


def to_tensor(img: Image.Image, channels: Optional[int] = None) -> torch.Tensor:
    """PIL image -> (C, H, W) float32 tensor in [-1, 1]; ``channels`` 1 or 3 converts."""
    if channels is None:
        channels = 1 if img.mode in GRAY_MODES else 3
    if channels not in (1, 3):
        raise InputError(f"channels must be 1 or 3, got {channels}")
    img = high_depth_to_float(img)
    if img.mode == "F":  # already on the 0..255 scale, not rounded to 8 bits
        a = np.clip(np.asarray(img, dtype=np.float32), 0, 255)
        a = a if channels == 1 else np.repeat(a[..., None], 3, axis=2)
        a = a / 127.5 - 1.0
    else:
        img = img.convert("L" if channels == 1 else "RGB")
        a = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    if a.ndim == 2:
        a = a[None]
    else:
        a = a.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(a))


def read_image(path: PathLike, channels: Optional[int] = None,
               size: Optional[Tuple[int, int]] = None, info: Optional[dict] = None) -> torch.Tensor:
    """Read one image file as a (C, H, W) tensor in [-1, 1], optionally resized to ``size`` (H, W).

    The file is decoded once; ``info``, when given, receives what the file itself holds:
    ``channels`` (1 or 3) and ``size`` (H, W) before any conversion.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"image not found: {path}")
    try:
        with Image.open(path) as opened:
            opened.load()
            im = upright(opened)
            if im.mode == "F":
                bad = int((~np.isfinite(np.asarray(im, dtype=np.float64))).sum())
                if bad:  # a floating-point image with NaN/Inf pixels: refused, never turned into black or white
                    raise InputError(f"image {path} holds {bad} NaN/Inf pixel value(s) (a floating-point image); "
                                     "replace them with numbers (e.g. 0) and save it again")
            if info is not None:
                info["channels"] = 1 if im.mode in GRAY_MODES else 3
                info["size"] = (im.height, im.width)
            if size is not None and (im.height, im.width) != tuple(size):
                im = high_depth_to_float(im)
                im = (im if im.mode == "F" else im.convert("RGB" if im.mode not in ("L", "1") else "L")).resize(
                    (size[1], size[0]), Image.Resampling.BICUBIC)
            x = to_tensor(im, channels)
    except InputError:
        raise
    except Image.DecompressionBombError as e:
        raise InputError(f"cannot read image {path}: {e} Resize it first (it is far larger than any image "
                         "colddiff trains on)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"cannot read image {path}: {e.__class__.__name__}: {e}") from None
    return x


def list_images(folder: PathLike) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def load_images(path: PathLike, channels: Optional[int] = None,
                size: Optional[Tuple[int, int]] = None, limit: Optional[int] = None) -> torch.Tensor:
    """An image file or a folder of images as an (N, C, H, W) tensor in [-1, 1].

    Without ``size`` all images must have the same size (the first image's).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    files = [path] if path.is_file() else list_images(path)
    if not files:
        raise InputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in folder {path}")
    if limit is not None:
        files = files[:whole(limit, "the number of images", 1, err=InputError)]  # files[:-1] would drop one
    imgs, first = [], None
    for f in files:
        x = read_image(f, channels=channels, size=size)
        if channels is None:
            channels = x.shape[0]
        if first is None:
            first = tuple(x.shape[-2:])
        elif tuple(x.shape[-2:]) != first:
            raise InputError(
                f"{f} is {x.shape[-1]}×{x.shape[-2]} but the other images are {first[1]}×{first[0]}; "
                "use images of one size (or --size N to resize them)"
            )
        imgs.append(x)
    return torch.stack(imgs)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) tensor in [-1, 1] -> (H, W) or (H, W, 3) uint8 array."""
    a = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP",
                 ".webp": "WEBP", ".gif": "GIF"}


def image_format(path: PathLike, what: str = "--out") -> str:
    """The PIL format an image file name asks for (its extension); an OutputError for one colddiff cannot write."""
    from .errors import OutputError

    suffix = Path(path).suffix.lower()
    fmt = WRITE_FORMATS.get(suffix)
    Image.init()  # every format plug-in PIL has, so SAVE is complete
    if fmt is None or fmt not in Image.SAVE:
        known = ", ".join(k for k, v in WRITE_FORMATS.items() if v in Image.SAVE)
        raise OutputError(f"{what} {path}: colddiff cannot write {'a ' + suffix if suffix else 'an extension-less'} "
                          f"image file; end the name with one of {known}")
    return fmt


def atomic_save(img: Image.Image, path: PathLike) -> Path:
    """Save a PIL image through a temporary file and a rename (never half-written), in the format of its extension."""
    path = Path(path)
    fmt = image_format(path)
    with atomic_path(path) as tmp:
        img.save(tmp, format=fmt)
    return path


def save_image(x: torch.Tensor, path: PathLike) -> Path:
    """Write one (C, H, W) tensor in [-1, 1] as an image file."""
    return atomic_save(Image.fromarray(to_uint8(x)), path)


def make_grid(rows: Sequence[Sequence[torch.Tensor]], col_labels: Optional[Sequence[str]] = None,
              row_labels: Optional[Sequence[str]] = None, scale: Optional[int] = None,
              pad: int = 2) -> Image.Image:
    """Lay out rows of (C, H, W) tensors in [-1, 1] as one RGB image with optional labels.

    Small images are enlarged by an integer ``scale`` (nearest neighbour) so that a strip of
    28-pixel digits is readable; by default each cell is at least 84 pixels high.
    """
    if not rows or not rows[0]:
        raise InputError("nothing to draw")
    H, W = rows[0][0].shape[-2:]
    if scale is None:
        scale = max(1, -(-84 // H))
    font = ImageFont.load_default()
    top = 16 if col_labels else 0
    left = max((int(font.getlength(s)) for s in row_labels), default=0) + 8 if row_labels else 0
    ncol = max(len(r) for r in rows)
    cw, ch = W * scale, H * scale
    sheet = Image.new("RGB", (left + ncol * (cw + pad) + pad, top + len(rows) * (ch + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for j, lab in enumerate(col_labels or []):
        x = left + pad + j * (cw + pad)
        draw.text((x + max(0, (cw - font.getlength(lab)) / 2), 2), lab, fill="black", font=font)
    for i, row in enumerate(rows):
        y = top + pad + i * (ch + pad)
        if row_labels:
            draw.text((4, y + ch / 2 - 6), row_labels[i], fill="black", font=font)
        for j, x in enumerate(row):
            im = Image.fromarray(to_uint8(x)).convert("RGB")
            if scale != 1:
                im = im.resize((cw, ch), Image.Resampling.NEAREST)
            sheet.paste(im, (left + pad + j * (cw + pad), y))
    return sheet
