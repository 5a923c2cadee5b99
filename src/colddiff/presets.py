"""The named run configurations (``--preset NAME``, ``colddiff presets``) and resolving a run's configuration.

The paper's settings beside :mod:`colddiff.paper` (which records where each number comes from),
plus small CPU presets on the embedded digits.  ``resolve_config`` combines ``--preset``,
``--config FILE`` and ``--set key=value``.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Dict

from .config import DataConfig, DegradationConfig, GenerationConfig, ModelConfig, RestoreConfig, RunConfig, \
    TrainConfig, deep_merge, describe_own_data, read_toml
from .errors import ConfigError


def _preset(name, description, data, degradation, model, **train) -> RunConfig:
    return RunConfig(preset=name, description=description, data=DataConfig(**data),
                     degradation=DegradationConfig(**degradation), model=ModelConfig(**model),
                     train=TrainConfig(**train))


_MNIST = dict(name="mnist", image_size=32, channels=1)   # the authors resize MNIST to 32x32
_CIFAR = dict(name="cifar10", image_size=32, channels=3)
_CELEBA = dict(name="celeba", image_size=128, channels=3)
_AFHQ = dict(name="afhq", image_size=128, channels=3)
# the authors' training augmentation (data/augment.py): Resize(1.12 n) + RandomCrop(n) + RandomHorizontalFlip
# (their Dataset_Aug1 loaders), or RandomCrop(n, padding=4) + RandomHorizontalFlip (their CIFAR-10 loaders)
_AUG = "resize-crop,flip"
_AUG_PAD = "pad-crop,flip"
# the authors' networks: their ConvNeXt Unet at dim 64, 1-2-4-8 (every MNIST, CelebA and AFHQ experiment but snow and
# colourisation); their DDPM Model for CIFAR-10 (ch 128, 1-2-2-2, attention at 16 px, dropout 0.1); their UnetConvNext
# (dim 64, 1-2-4-8: snowification/diffusion/model/get_model.py) for snow and colourisation
_NET_AUTHORS = dict(arch="lucidrains-convnext", dim=64, dim_mults=[1, 2, 4, 8])
_NET_CIFAR = dict(arch="ddpm", dim=128, dim_mults=[1, 2, 2, 2], attn_levels=[1], dropout=0.1)
_NET_SNOW = dict(arch="convnext-snow", dim=64, dim_mults=[1, 2, 4, 8])
_NET_CPU = dict(dim=16, dim_mults=[1, 2, 2], attn_levels=[], num_res_blocks=1)
_BLUR_GEN = dict(name="blur", T=300, params=dict(kernel_size=27, sigma=1.0, schedule="exponential",
                                                  rate=0.01, padding="circular", discrete=True))  # --discrete
# the authors' Gaussian-mask schedules: std kernel_std*(i + initial_mask) at step i = 0..T-1
_MASK_SMALL = dict(beta_start=1.1, beta_step=0.1)      # MNIST/CIFAR-10: kernel_std 0.1, initial_mask 11 (default)
_MASK_CELEBA = dict(beta_start=0.2, beta_step=0.2)     # CelebA: kernel_std 0.2, initial_mask 1
_MASK_GEN = dict(name="mask", T=750, params=dict(position="center", offset=0.5, fill="random", order="reverse",
                                                 color_scale=0.5, beta_start=0.05, beta_step=0.05, quantize=False))
_SNOW = dict(random=True, fix_brightness=True)          # --random_snow --fix_brightness
# the small CPU presets: ~10 minutes on 2 cores (see README); higher lr, no accumulation
_CPU_TRAIN = dict(steps=3000, batch_size=32, grad_accum=1, lr=1e-3, warmup_steps=100, grad_clip=1.0,
                  ema_decay=0.995, ema_every=1, ema_start=500, checkpoint_every=500, sample_every=1000,
                  log_every=50)

def _with(cfg: RunConfig, generation=None, restore=None) -> RunConfig:
    """A preset with its own default generation (and restoration) settings."""
    cfg.generation = GenerationConfig(**(generation or {}))
    cfg.restore = RestoreConfig(**(restore or {}))
    return cfg


# the generation settings whose FIDs the paper cites (colddiff.paper: GEN_SAMPLES_BLUR, GEN_SAMPLES_NOISE): blur
# generation from a 1-component GMM of channel means + noise 0.002 (broken symmetry); the hot baseline with DDIM
_GEN_BROKEN = dict(noise=0.002, k=1)
_GEN_DDIM = dict(sampler="ddim")
_MNIST5K_BLUR_GEN = dict(name="blur", T=30, params=dict(kernel_size=15, sigma=1.0, schedule="exponential", rate=0.05,
                                                         padding="circular"))
_IHD_SIGMA, _IHD_DELTA = 0.01, 0.0125   # Inverse Heat Dissipation's σ and δ = 1.25σ (Rissanen et al. 2023)
# mixture components over the 16 numbers of a 4x4 digit: measured on one 1,000-step quickstart run (3 seeds of 200
# digits each), mean classifier confidence 0.868 / 0.884 / 0.897 / 0.915 / 0.924 for k = 10 / 20 / 40 / 60 / 80,
# class entropy 0.98 throughout, classifier FID 31 -> 18: k = 60 clears the quickstart's 0.85 target with margin
_SR_GMM_K = 60

PRESETS: Dict[str, RunConfig] = {p.preset: p for p in [
    _preset("mnist-blur", "MNIST deblurring (Table 1): 32 px, T=20, 11x11, sigma 7 at every step, circular",
            dict(_MNIST, augment=_AUG),
            dict(name="blur", T=20, params=dict(kernel_size=11, sigma=7.0, schedule="constant", padding="circular")),
            _NET_AUTHORS),
    _preset("cifar10-blur", "CIFAR-10 deblurring (Table 1): T=50, 11x11, sigma_t = 0.35 + 0.01 (t-1), reflect",
            dict(_CIFAR, augment=_AUG),
            dict(name="blur", T=50, params=dict(kernel_size=11, schedule="cifar10", padding="reflect")), _NET_CIFAR),
    _preset("celeba-blur", "CelebA-128 deblurring (Table 1): T=200, 15x15, sigma_t = exp(0.01 (t-1)), reflect",
            dict(_CELEBA, augment=_AUG), dict(name="blur", T=200, params=dict(kernel_size=15, sigma=1.0,
                                                                              schedule="exponential", rate=0.01,
                                                                              padding="reflect")), _NET_AUTHORS),
    _preset("mnist-inpaint", "MNIST inpainting (Table 2): 32 px, Gaussian masks, T=50, widths 1.1 + 0.1 (t-1), "
            "random centre", _MNIST, dict(name="mask", T=50, params=dict(position="random", **_MASK_SMALL)),
            _NET_AUTHORS),
    _preset("cifar10-inpaint", "CIFAR-10 inpainting (Table 2): Gaussian masks, T=50, widths 1.1 + 0.1 (t-1), "
            "random centre", dict(_CIFAR, augment=_AUG_PAD),
            dict(name="mask", T=50, params=dict(position="random", **_MASK_SMALL)), _NET_CIFAR),
    _preset("celeba-inpaint", "CelebA-128 inpainting (Table 2): Gaussian masks, T=100, widths 0.2 t, centred",
            dict(_CELEBA, augment=_AUG),
            dict(name="mask", T=100, params=dict(position="center", offset=0.5, quantize=False, **_MASK_CELEBA)),
            _NET_AUTHORS, batch_size=100, steps=350_000),
    _preset("mnist-sr", "MNIST super-resolution: 32 px, T=3 bicubic halvings (32 -> 4 px)",
            _MNIST, dict(name="resolution", T=3, params=dict(downsample="bicubic")), _NET_AUTHORS),
    _preset("cifar10-sr", "CIFAR-10 super-resolution: T=3 bicubic halvings (32 -> 4 px)",
            dict(_CIFAR, augment=_AUG), dict(name="resolution", T=3, params=dict(downsample="bicubic")), _NET_CIFAR),
    _preset("celeba-sr", "CelebA-128 super-resolution: T=4 bicubic halvings (128 -> 8 px)",
            dict(_CELEBA, augment=_AUG), dict(name="resolution", T=4, params=dict(downsample="bicubic")),
            _NET_AUTHORS),
    _preset("cifar10-snow", "CIFAR-10 desnowification: the authors' snow level 3, random snow, fixed brightness, T=200",
            _CIFAR, dict(name="snow", T=200, params=dict(level=3, **_SNOW)), _NET_SNOW),
    _preset("celeba-snow", "CelebA-128 desnowification: the authors' snow level 4, random snow, fixed brightness, "
            "T=200", _CELEBA, dict(name="snow", T=200, params=dict(level=4, **_SNOW)), _NET_SNOW, batch_size=16),
    _preset("cifar10-desaturate", "CIFAR-10 colourisation: linear desaturation to the channel mean, T=20",
            _CIFAR, dict(name="desaturate", T=20, params=dict(schedule="linear", gray="mean")), _NET_SNOW),
    _preset("celeba-desaturate", "CelebA-128 colourisation: linear desaturation to the channel mean, T=20",
            _CELEBA, dict(name="desaturate", T=20, params=dict(schedule="linear", gray="mean")), _NET_SNOW,
            batch_size=16),
    _with(_preset("celeba-blur-gen", "CelebA-128 generation by deblurring: T=300, 27x27, sigma_t = exp(0.01 (t-1)), "
                  "circular", dict(_CELEBA, augment=_AUG), _BLUR_GEN, _NET_AUTHORS), generation=_GEN_BROKEN),
    _with(_preset("afhq-blur-gen", "AFHQ-128 generation by deblurring: T=300, 27x27, sigma_t = exp(0.01 (t-1)), "
                  "circular", dict(_AFHQ, augment=_AUG), _BLUR_GEN, _NET_AUTHORS), generation=_GEN_BROKEN),
    _preset("celeba-mask-gen", "CelebA-128 generation by unmasking: the authors' reversed schedule, T=750, widths "
            "0.05 t, ends in a random solid colour", dict(_CELEBA, augment=_AUG), _MASK_GEN, _NET_AUTHORS),
    _preset("celeba-animorph", "CelebA-128 animorphosis: faces mixed with AFHQ animals, T=200",
            dict(_CELEBA, augment=_AUG), dict(name="animorph", T=200, params=dict(partners="afhq")), _NET_AUTHORS),
    _with(_preset("celeba-noise", "CelebA-128 hot diffusion baseline: Gaussian noise (fixed per trajectory), cosine, "
                  "T=200, DDIM", dict(_CELEBA, augment=_AUG), dict(name="noise", T=200, params=dict(schedule="cosine")),
                  _NET_AUTHORS), generation=_GEN_DDIM),
    _with(_preset("afhq-noise", "AFHQ-128 hot diffusion baseline (paper FID 20.59): Gaussian noise, cosine, T=200, DDIM",
                  dict(_AFHQ, augment=_AUG), dict(name="noise", T=200, params=dict(schedule="cosine")), _NET_AUTHORS),
          generation=_GEN_DDIM),
    _preset("mnist5k-blur", "CPU: embedded MNIST digits, lighter blur (T=20, 11x11, sigma 1, reflect), ~10 min",
            dict(name="mnist-5k", image_size=28, channels=1),
            dict(name="blur", T=20, params=dict(kernel_size=11, sigma=1.0, schedule="constant", padding="reflect")),
            _NET_CPU, **_CPU_TRAIN),
    _preset("mnist5k-blur-gen", "CPU: embedded MNIST, generation by deblurring: T=30, 15x15, "
            "sigma_t = exp(0.05 (t-1)), circular (blurs to a constant), ~10 min",
            dict(name="mnist-5k", image_size=28, channels=1),
            dict(name="blur", T=30, params=dict(kernel_size=15, sigma=1.0, schedule="exponential", rate=0.05,
                                                padding="circular")),
            _NET_CPU, **_CPU_TRAIN),
    _preset("mnist5k-inpaint", "CPU: embedded MNIST digits, Gaussian masks (T=50, random centre), ~10 min",
            dict(name="mnist-5k", image_size=28, channels=1), dict(name="mask", T=50, params=dict(position="random")),
            _NET_CPU, **_CPU_TRAIN),
    _with(_preset("mnist5k-sr", "CPU: embedded MNIST digits, super-resolution (T=3, 28 -> 4 px), ~10 min; generates "
                  "from a Gaussian mixture over the 4x4 end state",
                  dict(name="mnist-5k", image_size=28, channels=1), dict(name="resolution", T=3),
                  _NET_CPU, **_CPU_TRAIN), generation=dict(k=_SR_GMM_K)),
    # generation on the embedded digits: the same network and budget for every start state
    _with(_preset("mnist5k-blur-ihd", "CPU: embedded MNIST, generation by deblurring with Inverse Heat Dissipation's "
                  "noise: the mnist5k-blur-gen blur, training inputs + N(0, 0.01^2), stochastic sampler",
                  dict(name="mnist-5k", image_size=28, channels=1), dict(_MNIST5K_BLUR_GEN, input_noise=_IHD_SIGMA),
                  _NET_CPU, **_CPU_TRAIN), generation=dict(sampler="stochastic", delta=_IHD_DELTA)),
    _preset("mnist5k-mask-gen", "CPU: embedded MNIST, generation by unmasking: centred masks ending in a random "
            "solid colour, T=50",
            dict(name="mnist-5k", image_size=28, channels=1),
            dict(name="mask", T=50, params=dict(position="center", fill="random")), _NET_CPU, **_CPU_TRAIN),
    # colour photos of one's own: 32-pixel crops at the photos' own scale, restored later at full size
    # restores with Algorithm 2 in one update from t (x0_hat + (y - D(x0_hat, t))): on held-out photos every step of
    # Algorithm 2 compounds the network's over-sharpening into ringing, one update does not (docs/photos.md)
    _with(_preset("folder-blur", "CPU: your colour photos (--set data.name=folder:PATH; full-size photos are cut into "
            "random 32-px crops as they are read), "
            "blur T=10, 7x7, sigma 1, reflect; restores whole photos at their own size, ~10 min",
            dict(name="folder:", image_size=32, channels=3, augment="flip"),
            dict(name="blur", T=10, params=dict(kernel_size=7, sigma=1.0, schedule="constant", padding="reflect")),
            dict(dim=16, dim_mults=[1, 2, 2], attn_levels=[], num_res_blocks=1), **_CPU_TRAIN),
          restore=dict(sample_steps="1")),
    _with(_preset("mnist5k-noise", "CPU: embedded MNIST, the hot baseline: Gaussian noise (cosine, T=100), DDIM",
                  dict(name="mnist-5k", image_size=28, channels=1),
                  dict(name="noise", T=100, params=dict(schedule="cosine")), _NET_CPU, **_CPU_TRAIN),
          generation=dict(sampler="ddim")),
]}


def preset(name: str) -> RunConfig:
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown preset {name!r}{hint}; see `colddiff presets` for the list")
    return PRESETS[name].copy()


def resolve_config(preset_name: str = "", config_file=None, sets=()) -> RunConfig:
    """The run configuration of ``--preset`` + ``--config FILE`` + ``--set key=value`` (in that order)."""
    if not preset_name and not config_file:
        raise ConfigError("say what to train: --preset NAME (see `colddiff presets`) and/or --config run.toml")
    base = preset(preset_name).to_dict() if preset_name else RunConfig().to_dict()
    if config_file:
        path = Path(config_file)
        if path.is_dir():
            raise ConfigError(f"--config {path} is a folder; give a TOML file (e.g. a run's config.toml)")
        base = deep_merge(base, read_toml(path))
    cfg = RunConfig.from_dict(base).override(list(sets))
    from .samplers import ScheduleError, parse_schedule   # torch: only when a configuration is resolved

    try:   # the schedule `colddiff restore` will use: refused now, not after training
        parse_schedule(cfg.restore.sample_steps)
    except ScheduleError as e:
        raise ConfigError(f"restore.sample_steps: {e}") from None
    if preset_name and cfg.data.name != preset(preset_name).data.name:
        cfg.description = describe_own_data(cfg, preset_name)  # not the preset's words about its own data
    return cfg
