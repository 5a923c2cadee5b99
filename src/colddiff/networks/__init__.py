"""The restoration networks R(x_t, t) -> x0_hat, chosen by a run's ``model.arch``.

``ARCHS`` maps each architecture name to its builder (a function of the run's ``[model]``
settings plus ``channels``) and a one-line description; :func:`build` is the one constructor the
rest of colddiff calls (through ``RunConfig.build_model``).  Another architecture is one module
here and one line in ``ARCHS``.

* ``colddiff``: colddiff's own DDPM-style U-Net (:mod:`.unet`), the CPU presets' network;
* ``lucidrains-convnext``: the authors' ConvNeXt U-Net with linear attention (:mod:`.convnext`), the
  network of their MNIST, CelebA and AFHQ experiments;
* ``convnext-snow``: the authors' ``UnetConvNext`` of their snowification and colourisation experiments,
  the same network as ``lucidrains-convnext`` layer for layer (registered under its own name so that
  those presets say which of the authors' classes they reproduce);
* ``ddpm``: the authors' DDPM ``Model`` (:mod:`.ddpm`), the network of their CIFAR-10 deblurring,
  inpainting and super-resolution experiments.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Tuple

from torch import nn

from ..errors import ConfigError
from . import convnext, ddpm, unet
from .common import count_parameters

DEFAULT = "colddiff"


@dataclass(frozen=True)
class Arch:
    build: Callable[[Dict[str, Any]], nn.Module]   # the network of a [model] table (+ channels)
    description: str
    uses: Tuple[str, ...]                           # the [model] keys it reads


def _colddiff(kw: Dict[str, Any]) -> nn.Module:
    return unet.build({k: kw[k] for k in ARCHS[DEFAULT].uses + ("channels",)})


ARCHS: Dict[str, Arch] = {
    "colddiff": Arch(_colddiff, "colddiff's U-Net: residual blocks with time scale/shift, self-attention at "
                     "attn_levels and in the middle (networks/unet.py)",
                     ("dim", "dim_mults", "attn_levels", "num_res_blocks", "dropout")),
    "lucidrains-convnext": Arch(convnext.build, "the authors' ConvNeXt U-Net with linear attention at every level "
                                "(their MNIST, CelebA and AFHQ experiments; networks/convnext.py)",
                                ("dim", "dim_mults")),
    # snowification/ and decolor-diffusion/diffusion/model/unet_convnext.py: UnetConvNextBlock is their Unet with
    # an output_mean_scale option that get_model() never passes, so the same builder serves both names
    "convnext-snow": Arch(convnext.build, "the authors' UnetConvNext (their snow and colourisation experiments): "
                          "the lucidrains-convnext network, layer for layer (networks/convnext.py)",
                          ("dim", "dim_mults")),
    "ddpm": Arch(ddpm.build, "the authors' DDPM Model: residual blocks with additive time, single-head attention at "
                 "attn_levels and in the middle (their CIFAR-10 experiments; networks/ddpm.py)",
                 ("dim", "dim_mults", "attn_levels", "num_res_blocks", "dropout")),
}


def check_arch(name: Any) -> str:
    """``name`` if it is a known architecture, else a one-line ConfigError listing them."""
    if not isinstance(name, str) or name not in ARCHS:
        raise ConfigError(f"model.arch {name!r} is not an architecture; choose one of {', '.join(ARCHS)} "
                          "(see `colddiff networks`)")
    return name


def build(model_config: Mapping[str, Any]) -> nn.Module:
    """The network of ``model_config``: a run's ``[model]`` table plus ``channels`` (``RunConfig.model_kwargs``).

    ``arch`` picks the architecture (``colddiff`` when absent, as in runs saved before it existed).
    """
    kw = dict(model_config)
    arch = check_arch(kw.pop("arch", DEFAULT))
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()}
    return ARCHS[arch].build(kw)


def parameters_of(model_config: Mapping[str, Any]) -> int:
    """The parameter count of ``model_config``'s network, built on the meta device (no memory, instant)."""
    import torch

    with torch.device("meta"):
        return count_parameters(build(model_config))


def describe(model_configs: Mapping[str, Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """One row per distinct network among ``model_configs`` (name -> model_config, e.g. each preset's):
    arch, the settings it reads, its parameter count and the names that use it, in first-seen order."""
    rows: Dict[Tuple, Dict[str, Any]] = {}
    for name, mc in model_configs.items():
        arch = mc.get("arch", DEFAULT)
        settings = {k: mc[k] for k in ("channels",) + ARCHS[check_arch(arch)].uses}
        key = (arch,) + tuple((k, tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in settings.items())
        if key not in rows:
            rows[key] = dict(arch=arch, settings=settings, params=parameters_of(mc), used_by=[])
        rows[key]["used_by"].append(name)
    return list(rows.values())
