"""Typed run configuration and TOML I/O (the named presets are in :mod:`colddiff.presets`).

A run is fully described by a :class:`RunConfig`; it is written to ``config.toml`` in the
run folder when training starts and stored inside every checkpoint, so every later command
(resume, evaluate, restore, ...) needs nothing but the run folder.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore

from .errors import ConfigError
from .fileio import atomic_path
from .validate import config_ints, number, whole


@dataclass
class DataConfig:
    name: str = "mnist-5k"        # a name from `colddiff data list`, or folder:PATH
    image_size: int = 28
    channels: int = 1
    root: str = ""                # where the data set's files are ("" = the default places)
    num_workers: int = -1         # DataLoader workers for data sets decoded on the fly; -1 = auto (speed.auto_workers)
    augment: str = ""             # training-only: "flip", "resize-crop,flip", "pad-crop,flip" (data/augment.py)


@dataclass
class DegradationConfig:
    name: str = "blur"
    T: int = 20
    params: Dict[str, Any] = field(default_factory=dict)  # the family's own keywords
    # Inverse Heat Dissipation's training-input noise σ (Rissanen et al., ICLR 2023): R learns from
    # D(x0, t) + σ·ε (t >= 1) instead of D(x0, t), so it models a conditional distribution rather
    # than a deterministic inverse.  0 = the paper's cold training.  Part of the forward process, so a
    # resumed run cannot change it.
    input_noise: float = 0.0


@dataclass
class ModelConfig:
    arch: str = "colddiff"        # the network, one of colddiff.networks.ARCHS (`colddiff networks`)
    dim: int = 64
    dim_mults: List[int] = field(default_factory=lambda: [1, 2, 4, 8])
    attn_levels: List[int] = field(default_factory=lambda: [1])
    num_res_blocks: int = 2
    dropout: float = 0.0


@dataclass
class TrainConfig:
    steps: int = 700_000          # optimizer steps
    batch_size: int = 32          # images per micro-batch (per process under DDP)
    grad_accum: int = 2           # micro-batches per optimizer step
    lr: float = 2e-5
    warmup_steps: int = 0         # linear learning-rate warm-up
    grad_clip: float = 0.0        # max gradient norm; 0 = off
    ema_decay: float = 0.995
    ema_every: int = 10
    ema_start: int = 2000         # before this step the EMA is a plain copy of the weights
    precision: str = "fp32"       # fp32 | bf16 | fp16 (mixed precision; fp16 needs CUDA)
    device: str = "auto"          # auto | cpu | cuda | cuda:N
    seed: int = 0
    deterministic: bool = False   # torch.use_deterministic_algorithms (bit-exact resume on CPU holds without it)
    checkpoint_every: int = 5000
    keep_last: int = 3            # checkpoints kept in the run folder
    sample_every: int = 5000      # PNG grid of a fixed batch; 0 = off
    log_every: int = 50           # metrics log lines
    # speed (colddiff.speed): none changes what is computed, only how fast (loss within float tolerance)
    compile: str = "off"          # off | default | max-autotune: torch.compile of the restorer + L1 loss
    channels_last: bool = False   # NHWC memory format for the network and its inputs (faster convs on GPUs)
    fused_adam: str = "auto"      # auto (fused on CUDA) | on | off: one kernel for the whole Adam update


@dataclass
class GenerationConfig:
    """How a run generates by default (``colddiff generate``, ``evaluate --generation``, the quickstart)."""

    sampler: str = "algorithm2"   # any registered sampler (colddiff.samplers.SAMPLERS)
    noise: float = 0.0            # std of the noise added to the start state (the paper's broken symmetry, 0.002)
    delta: float = 0.0            # the stochastic sampler's per-step noise δ (Inverse Heat Dissipation)
    k: int = 1                    # Gaussian-mixture components of the fitted start statistic


@dataclass
class RestoreConfig:
    """How ``colddiff restore`` restores a user's images by default (its options override these)."""

    # the steps Algorithm 2 (or another iterative sampler) visits from t down to 0: "" or "all" = every step, the
    # paper's Algorithm 2; a count ("1": one update, x0_hat + (y - D(x0_hat, t))), COUNT:SPACING or a list
    # (--sample-steps, colddiff.samplers.parse_schedule)
    sample_steps: str = ""


@dataclass
class RunConfig:
    preset: str = "custom"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    restore: RestoreConfig = field(default_factory=RestoreConfig)

    # ------------------------------------------------------------------ conversion
    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RunConfig":
        if not isinstance(d, dict):
            raise ConfigError("a run configuration must be a table of sections")
        out = cls()
        for f in fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            if dataclasses.is_dataclass(getattr(out, f.name)):
                if not isinstance(v, dict):
                    raise ConfigError(f"config section [{f.name}] must be a table")
                setattr(out, f.name, _section_from_dict(type(getattr(out, f.name)), v, f.name))
            else:
                if not isinstance(v, str):
                    raise ConfigError(f"config key {f.name} must be text, got {v!r}")
                setattr(out, f.name, v)
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown config section(s): {', '.join(sorted(unknown))}; "
                              f"sections are {', '.join(f.name for f in fields(cls))}")
        return out

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())

    def save(self, path) -> Path:
        """Write ``config.toml`` atomically."""
        path = Path(path)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(self.to_toml())
        return path

    @classmethod
    def load(cls, path) -> "RunConfig":
        return cls.from_dict(read_toml(path))

    def copy(self) -> "RunConfig":
        return copy.deepcopy(self)

    # ------------------------------------------------------------------ overrides
    def override(self, assignments: List[str]) -> "RunConfig":
        """Apply ``--set section.key=value`` assignments (values typed by the field)."""
        for a in assignments or []:
            if "=" not in a:
                raise ConfigError(f"--set expects section.key=value, got {a!r} (e.g. --set train.steps=1000)")
            key, value = a.split("=", 1)
            self.set(key.strip(), value.strip())
        self.validate()
        return self

    def set(self, key: str, text: str) -> None:
        parts = key.split(".")
        sections = {f.name: getattr(self, f.name) for f in fields(self) if dataclasses.is_dataclass(getattr(self, f.name))}
        if len(parts) < 2 or parts[0] not in sections:
            raise ConfigError(f"unknown config key {key!r}; keys look like section.name with section one of "
                              f"{', '.join(sections)} (e.g. train.steps)")
        sec = sections[parts[0]]
        if parts[0] == "degradation" and parts[1] == "name" and len(parts) == 2:
            if text.strip() != sec.name:  # another family: the old family's parameters mean nothing to it
                sec.name, sec.params = text.strip(), {}
            return
        if parts[0] == "degradation" and (parts[1] == "params" or parts[1] not in {f.name for f in fields(sec)}):
            name = parts[-1] if parts[1] == "params" else parts[1]
            sec.params[name] = parse_value(text)
            return
        if len(parts) != 2:
            raise ConfigError(f"unknown config key {key!r}")
        ftypes = {f.name: f for f in fields(sec)}
        if parts[1] not in ftypes:
            raise ConfigError(f"unknown config key {key!r}; [{parts[0]}] has {', '.join(ftypes)}")
        current = getattr(sec, parts[1])
        setattr(sec, parts[1], _coerce(text, current, key))

    def validate(self) -> "RunConfig":
        self._validate_values()
        tr = self.train
        for name in ("steps", "batch_size", "grad_accum", "ema_every", "checkpoint_every", "keep_last"):
            if getattr(tr, name) < 1:
                raise ConfigError(f"train.{name} must be at least 1, got {getattr(tr, name)}")
        for name in ("warmup_steps", "ema_start", "sample_every", "log_every"):
            if getattr(tr, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(tr, name)}")
        if not tr.lr > 0:
            raise ConfigError(f"train.lr must be positive, got {tr.lr}")
        if not 0 <= tr.ema_decay < 1:
            raise ConfigError(f"train.ema_decay must be in [0, 1), got {tr.ema_decay}")
        if tr.precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"train.precision must be fp32, bf16 or fp16, got {tr.precision!r}")
        from .speed import check_train_speed

        check_train_speed(tr, self.data)
        if self.data.channels not in (1, 3):
            raise ConfigError(f"data.channels must be 1 or 3, got {self.data.channels}")
        if self.data.image_size < 8:
            raise ConfigError(f"data.image_size must be at least 8, got {self.data.image_size}")
        from .data.augment import parse as parse_augment

        parse_augment(self.data.augment)
        if self.model.dim < 1 or not self.model.dim_mults:
            raise ConfigError("model.dim must be positive and model.dim_mults non-empty")
        from .networks import check_arch

        check_arch(self.model.arch)
        for key, v in (("degradation.input_noise", self.degradation.input_noise),
                       ("generation.noise", self.generation.noise), ("generation.delta", self.generation.delta)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf"):
                raise ConfigError(f"{key} must be a finite number >= 0 (a noise std in [-1, 1] units), got {v!r}")
        if not isinstance(self.generation.sampler, str):
            raise ConfigError(f"generation.sampler must be text, got {self.generation.sampler!r}")
        whole(self.generation.k, "generation.k", 1)
        if not isinstance(self.restore.sample_steps, str):   # its syntax: presets.resolve_config, restore
            raise ConfigError(f"restore.sample_steps must be text such as \"1\" or \"all\", "
                              f"got {self.restore.sample_steps!r}")
        config_ints(lambda key: getattr(getattr(self, key.split(".")[0]), key.split(".")[1]))  # bounds: validate.INT_KEYS
        return self

    def _validate_values(self) -> "RunConfig":
        """Finite numbers in range and the right types (see :mod:`colddiff.validate`): a NaN learning
        rate, a negative clip or a list given as text is refused before a network is built."""
        tr, m = self.train, self.model
        number(tr.lr, "train.lr", 0, 1, lo_open=True)  # Adam beyond lr 1 only diverges (1e38: NaN at step 1)
        number(tr.grad_clip, "train.grad_clip (0 = off)", 0)
        number(tr.ema_decay, "train.ema_decay", 0, 1)
        whole(self.data.image_size, "data.image_size", lo=8, hi=4096)
        whole(self.degradation.T, "degradation.T", lo=1)
        whole(m.dim, "model.dim", lo=1, hi=4096)
        whole(tr.seed, "train.seed", lo=0, hi=2**32 - 1)
        whole(m.num_res_blocks, "model.num_res_blocks", lo=1, hi=64)
        number(m.dropout, "model.dropout", 0, 1)
        if m.dropout >= 1:
            raise ConfigError(f"model.dropout must be below 1, got {m.dropout}")
        for name, lst, lo in (("model.dim_mults", m.dim_mults, 1), ("model.attn_levels", m.attn_levels, 0)):
            if not isinstance(lst, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x >= lo
                                                    for x in lst):
                raise ConfigError(f"{name} must be a list of whole numbers >= {lo} (e.g. [1, 2, 4]), got {lst!r}")
        bad = [a for a in m.attn_levels if a >= len(m.dim_mults)]
        if bad:
            raise ConfigError(f"model.attn_levels {bad} out of range: the network has levels 0..{len(m.dim_mults) - 1} "
                              f"(one per entry of model.dim_mults)")
        for key, v in (("data.name", self.data.name), ("data.root", self.data.root), ("train.device", tr.device),
                       ("degradation.name", self.degradation.name)):
            if not isinstance(v, str):
                raise ConfigError(f"{key} must be text, got {v!r}")
        if not isinstance(self.degradation.params, dict):
            raise ConfigError(f"degradation.params must be a table, got {self.degradation.params!r}")
        return self

    # ------------------------------------------------------------------ builders
    def build_degradation(self):
        from . import degradations

        return degradations.create(self.degradation.name, T=self.degradation.T, image_size=self.data.image_size,
                                   channels=self.data.channels, **self.degradation.params)

    def model_kwargs(self) -> Dict[str, Any]:
        m = self.model
        return dict(arch=m.arch, channels=self.data.channels, dim=m.dim, dim_mults=tuple(m.dim_mults),
                    attn_levels=tuple(m.attn_levels), num_res_blocks=m.num_res_blocks, dropout=m.dropout)

    def build_model(self):
        """R(x_t, t): the network of ``model.arch`` (:func:`colddiff.networks.build`)."""
        from . import networks

        return networks.build(self.model_kwargs())


MAX_TOML_BYTES = 1 << 20   # a run's config is a few hundred bytes; a larger file is not one


def read_toml(path) -> Dict[str, Any]:
    """A TOML file as a dict.  Anything the parser cannot read is a one-line ConfigError naming the file:
    missing, a folder, unreadable, over :data:`MAX_TOML_BYTES`, not UTF-8 (TOML's encoding), malformed,
    or nested so deeply that the parser would recurse out of the stack."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if not path.is_file():
        raise ConfigError(f"config file {path} is not a regular file; give a TOML file")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_TOML_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    if len(raw) > MAX_TOML_BYTES:
        raise ConfigError(f"config file {path} is larger than {MAX_TOML_BYTES // 1024} KiB: not a run configuration")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {e.start}); TOML files are UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path} is not valid TOML: its arrays or tables are nested too deeply") from None


def parse_value(text: str) -> Any:
    """Turn a ``--param`` value into int, float, bool, None or str."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text



def _section_from_dict(cls, d: Dict[str, Any], section: str):
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(f"unknown key(s) in [{section}]: {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(names))}")
    obj = cls()
    for k, v in d.items():
        current = getattr(obj, k)
        if isinstance(current, bool) and not isinstance(v, bool):
            raise ConfigError(f"{section}.{k} must be true or false, got {v!r}")
        if isinstance(current, (int, float)) and not isinstance(current, bool):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"{section}.{k} must be a number, got {v!r}")
            if isinstance(current, int) and not (isinstance(v, int) or (math.isfinite(v) and float(v).is_integer())):
                raise ConfigError(f"{section}.{k} must be a whole number, got {v!r}")
            v = type(current)(v) if isinstance(current, float) or float(v).is_integer() else v
        if isinstance(current, list) and not (isinstance(v, list) and all(
                isinstance(x, int) and not isinstance(x, bool) for x in v)):
            raise ConfigError(f"{section}.{k} must be a list of whole numbers (e.g. {k} = {current}), got {v!r}")
        if isinstance(current, str) and not isinstance(v, str):
            raise ConfigError(f"{section}.{k} must be text (in quotes), got {v!r}")
        if isinstance(current, dict) and not isinstance(v, dict):
            raise ConfigError(f"{section}.{k} must be a table ([{section}.{k}]), got {v!r}")
        setattr(obj, k, v)
    return obj


def _coerce(text: str, current: Any, key: str) -> Any:
    try:
        if isinstance(current, bool):
            low = text.lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return low in ("true", "1", "yes")
        if isinstance(current, int):
            return int(float(text)) if float(text).is_integer() else int(text)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, list):
            body = text.strip().strip("[]").strip()
            if body and not re.fullmatch(r"\d+(\s*[,-]\s*\d+)*", body):
                raise ConfigError(f"--set {key}={text}: a list of whole numbers >= 0 separated by commas or dashes "
                                  f"(e.g. {key}=1,2 or {key}=1-2-4); negative numbers are not levels")
            return [int(x) for x in body.replace("-", ",").split(",") if x.strip()] if body else []
        return text
    except ConfigError:
        raise
    except ValueError:
        raise ConfigError(f"--set {key}={text}: expected {type(current).__name__}") from None


# ---------------------------------------------------------------------------- resolution and resume
# Settings a resumed run may change: how it trains, not what it is (its data, degradation, network).
RESUMABLE = ("train.", "data.num_workers", "data.root", "generation.", "restore.")


def deep_merge(base: Dict[str, Any], extra: Dict[str, Any]) -> Dict[str, Any]:
    """``extra`` merged into ``base`` (nested tables merged key by key).  A [degradation] table that
    names another family replaces the old family's parameters instead of merging into them."""
    for k, v in extra.items():
        if k == "degradation" and isinstance(v, dict) and isinstance(base.get(k), dict) \
                and v.get("name", base[k].get("name")) != base[k].get("name"):
            base[k] = {**{kk: vv for kk, vv in base[k].items() if kk != "params"}, **v}
            base[k].setdefault("params", {})
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


def data_label(name: str) -> str:
    """A short name for a data set: the folder's own name for ``folder:PATH``, else the name itself."""
    if name.startswith("folder:"):
        return Path(name[len("folder:"):].rstrip("/\\") or "folder").expanduser().name or "folder"
    return name


OWN_DATA = "the settings of preset {preset} on this data"   # the end of a description rewritten for other data


def describe_own_data(cfg: RunConfig, preset_name: str) -> str:
    """The description of a preset's settings trained on other data (the preset's own text named its data)."""
    d = cfg.data
    return (f"{data_label(d.name)} ({d.name}, {d.image_size} px, {d.channels} channel(s)), {cfg.degradation.name} "
            f"T={cfg.degradation.T}: " + OWN_DATA.format(preset=preset_name))


def run_name(cfg: RunConfig) -> str:
    """What reports, captions and model cards call a run: its preset when it trains the preset's own data,
    else its data set and degradation (``photos-blur``), never a preset whose text described other data.

    A preset resolved onto other data says so in its description (:func:`describe_own_data`, written by
    ``presets.resolve_config``); a folder of one's own is always named after the folder."""
    own = cfg.preset != "custom" and not cfg.data.name.startswith("folder:") \
        and not cfg.description.endswith(OWN_DATA.format(preset=cfg.preset))
    return cfg.preset if own else f"{data_label(cfg.data.name)}-{cfg.degradation.name}"


def check_resumable(saved: Dict[str, Any], cfg: "RunConfig", where="the run") -> None:
    """A one-line ConfigError when ``cfg`` differs from the ``saved`` config outside :data:`RESUMABLE`."""
    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict) and not (prefix == "degradation." and k == "params"):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    a, b = flat(RunConfig.from_dict(saved).to_dict()), flat(cfg.to_dict())
    changed = sorted(k for k in set(a) | set(b)
                     if a.get(k) != b.get(k) and not k.startswith(RESUMABLE) and k not in ("description",))
    if changed:
        raise ConfigError(f"a resumed run keeps its data, degradation and network; only train.* settings can change, "
                          f"but {', '.join(changed)} differ from {where} (start a new run with another --out instead)")

