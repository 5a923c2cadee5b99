"""Test pairs at native size: the user's own images degraded at one step t, one output per input.

``colddiff degrade --run RUN --t 5 --input photos/ --out blurred/`` (or ``--preset NAME`` /
``--degradation NAME`` instead of ``--run``) writes x_t = D(x0, t) for every image x0 of the input,
at the image's own size, as ``blurred/<same relative path and stem>.png`` (PNG: lossless, so the
only change is the degradation), plus ``degrade.json`` recording the degradation, t, the seed and
each image's size.  ``colddiff restore RUN --input blurred/ --out restored/`` then names its
results after the same stems, so sharp, degraded and restored images pair up by name.

The degradation must act the same way at every pixel to apply to an image of another size than
its own (:func:`~colddiff.restoration.native_size_problem`); otherwise such an
image is refused in one line.  Random families (masks, noise) draw each image's parameters from
one generator seeded by ``seed``, image after image in file order.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from .errors import InputError
from .fileio import atomic_path
from .images import read_image, save_image
from .outputs import claim, write_result
from .restoration import input_files, native_size_problem, output_names
from .runs import check_t
from .validate import check_seed

__all__ = ["degrade_files"]


def degrade_files(D, spec, out, t, channels: Optional[int] = None, seed: int = 0, limit: Optional[int] = None,
                  source: str = "") -> Dict[str, Any]:
    """Write D(x0, t) (``D.observe``: rounded where the family quantises) for every image of ``spec`` (a file or
    a folder, recursively) into the folder ``out`` at the image's own size; return the ``degrade.json`` record.

    ``channels`` converts the images (1 or 3; None keeps each file's own); ``source`` says where D came from
    (a run folder or a preset), for the record.  The folder is written under the output rule: all files or
    none, never into the input, never over files colddiff did not write."""
    t = check_t(t, D.T)
    out = claim(out, "degrade", inputs=[spec])  # before any image is read
    files, root = input_files(spec)
    files = files[:limit] if limit else files
    own = (D.image_size, D.image_size) if getattr(D, "image_size", None) else None
    generator = torch.Generator().manual_seed(check_seed(seed))
    records = [{"input": str(f)} for f in files]
    info = {"degradation": repr(D), "source": source, "t": int(t), "T": int(D.T), "seed": int(seed),
            "images": records}

    def write(stage):  # one image at a time, all files or none; the record names them as they will be committed
        for rec, f, stem in zip(records, files, output_names(files, root)):
            x0 = read_image(f, channels=channels)[None]
            H, W = x0.shape[-2:]
            why = native_size_problem(D, H, W) if (H, W) != own else None
            if why is not None:
                raise InputError(f"{f} is {W}×{H}, and {D.name} applies only to {own[1]}×{own[0]} images because "
                                 f"{why}; crop or resize it to {own[1]}×{own[0]} first")
            with torch.no_grad():
                x_t = D.observe(x0, D.as_t(t, x0), D.context(x0, generator))
            rec.update(size=[int(W), int(H)], channels=int(x0.shape[1]))
            target = stage / f"{stem}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            rec["output"] = str(stage.final(save_image(x_t[0], target)))
        with atomic_path(stage / "degrade.json") as tmp:
            Path(tmp).write_text(json.dumps(info, indent=2))

    write_result(out, "degrade", write, inputs=[spec])
    return info
