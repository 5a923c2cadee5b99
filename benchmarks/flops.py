"""Model FLOPs per image (``torch.utils.flop_counter``) and the peak of the device they run on.

``flops_per_image(model, C, H, train=True)`` counts the floating-point operations of one
forward (and, for training, backward) pass of the restorer on one image, as PyTorch's
``FlopCounterMode`` counts them: 2 per multiply-add of matrix multiplications and convolutions
(attention included); element-wise work (normalisation, activations, the degradation, Adam) is
not counted, as is usual for MFU.  Counted on the ``meta`` device (shapes only: instant, no
memory) where the network allows it, else on a CPU batch of 1.

``peak_flops(device_name, dtype)``: the dense peak of the device in FLOP/s from the vendors'
data sheets (no sparsity).  On CUDA, float32 runs use TF32 tensor cores for matrix products
(``train()`` sets ``allow_tf32``), so the float32 peak quoted is TF32's.  An unknown device
returns None and the tables say "unknown device".

    achieved TFLOP/s = flops_per_image x images/s;   MFU = achieved / peak
"""
from __future__ import annotations

import copy
import re
from typing import Optional, Tuple

import torch

# Dense peak TFLOP/s (data sheets; SXM unless named): bf16 tensor cores, TF32 tensor cores, plain fp32.
PEAKS_TFLOPS = {
    "H200": {"bfloat16": 989.0, "tf32": 494.0, "float32": 67.0},
    "H100 PCIe": {"bfloat16": 756.0, "tf32": 378.0, "float32": 51.0},
    "H100 NVL": {"bfloat16": 835.0, "tf32": 418.0, "float32": 60.0},
    "H100": {"bfloat16": 989.0, "tf32": 494.0, "float32": 67.0},
    "A100": {"bfloat16": 312.0, "tf32": 156.0, "float32": 19.5},
}


def peak_flops(device_name: str, dtype: str, device_type: str = "cuda") -> Tuple[Optional[float], str]:
    """(peak FLOP/s or None, what it is) for a device name such as 'NVIDIA H100 80GB HBM3'."""
    if device_type != "cuda":
        return None, f"unknown device ({device_name}: no peak table for CPUs)"
    for key in PEAKS_TFLOPS:  # most specific names first (H100 PCIe before H100)
        if re.search(r"\b" + re.escape(key).replace(r"\ ", r".*") + r"\b", device_name, flags=re.I):
            kind = "bfloat16" if dtype == "bfloat16" else "tf32"
            return PEAKS_TFLOPS[key][kind] * 1e12, f"{key} dense {kind} {PEAKS_TFLOPS[key][kind]:g} TFLOP/s"
    return None, f"unknown device ({device_name}: not in benchmarks.flops.PEAKS_TFLOPS)"


def flops_per_image(model: torch.nn.Module, C: int, H: int, train: bool = True) -> int:
    """FLOPs of one image through ``model`` (forward, plus backward when ``train``)."""
    from torch.utils.flop_counter import FlopCounterMode

    def count(net: torch.nn.Module, device: str) -> int:
        x = torch.zeros(1, C, H, H, device=device, requires_grad=False)
        t = torch.ones(1, dtype=torch.long, device=device)
        counter = FlopCounterMode(display=False)
        with counter:
            if train:
                net.train()
                net(x, t).float().abs().mean().backward()
            else:
                net.eval()
                with torch.no_grad():
                    net(x, t)
        return int(counter.get_total_flops())

    try:
        return count(copy.deepcopy(model).to("meta"), "meta")
    except Exception:  # an op without a meta kernel: count on a real CPU copy
        return count(copy.deepcopy(model).float().cpu(), "cpu")


def mfu_fields(prefix: str, flops_img: int, images_per_s: Optional[float], peak: Optional[float]) -> dict:
    """{prefix_tflops: achieved TFLOP/s, prefix_mfu: fraction of peak (None: unknown)}."""
    if images_per_s is None:
        return {f"{prefix}_tflops": None, f"{prefix}_mfu": None}
    achieved = flops_img * images_per_s
    return {f"{prefix}_tflops": achieved / 1e12, f"{prefix}_mfu": (achieved / peak) if peak else None}
