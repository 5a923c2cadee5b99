"""The ``colddiff`` command line: argument parsing and thin adapters; the work is done by the library.

Each command is a pair: ``add_NAME(sub)`` declares its arguments (with an example) and
``cmd_NAME(args)`` calls the library.  Every problem the user can fix ends in one line on
stderr and exit status 2; a training stopped by Ctrl-C/SIGTERM (checkpoint saved) exits 3;
1 is kept for bugs ("internal error").  ``--plugin FILE_OR_MODULE`` (or ``COLDDIFF_PLUGINS``) loads
degradations of one's own before any command runs (see :mod:`colddiff.plugins`).
"""
from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from typing import Optional, Sequence

from . import __version__
from .errors import ColddiffError, ConfigError, InputError
from .fileio import check_writable
from .outputs import check_files, claim, owned_files
from .validate import MAX_BATCH, MAX_IMAGES, MAX_SEED, MAX_STEPS, argtype

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 3    # training stopped by Ctrl-C/SIGTERM after saving a checkpoint: resume it
COUNT, REAL0 = argtype("count", hi=MAX_IMAGES), argtype("real", 0)  # --n 0, --noise -1, ... refused
SEED = argtype("whole", 0, MAX_SEED)                 # a seed beyond 64 bits overflowed the generator
# every whole-number option has an upper bound, stated in its error (tests/test_rules_numbers.py)
TRAIN_STEPS, BATCH = argtype("count", hi=MAX_STEPS), argtype("count", hi=MAX_BATCH)  # --T: the family says its own bound
PIXELS = 16384                                       # the largest --size / --tile / --overlap
RAW = argparse.RawDescriptionHelpFormatter


class _Parser(argparse.ArgumentParser):
    """argparse that says what to do next on bad arguments."""

    def error(self, message: str):  # noqa: D401  (argparse API)
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _command(sub, name: str, help: str, description: str, examples: str, func) -> argparse.ArgumentParser:
    """A sub-command with its help, its examples and its adapter."""
    p = sub.add_parser(name, help=help, description=description, formatter_class=RAW,
                       epilog=textwrap.dedent(examples).strip("\n") + "\n" if examples else None)
    p.set_defaults(func=func)
    p.add_argument("--plugin", action="append", default=argparse.SUPPRESS, metavar="FILE_OR_MODULE",
                   help="load degradations of your own first (repeatable; also before the command)")
    p.add_argument("--threads", type=int, default=argparse.SUPPRESS, metavar="N",
                   help="CPU threads for torch (default: every core on a quiet machine, what other processes "
                        "leave free on a busy one, re-measured while it runs; also $COLDDIFF_THREADS)")
    return p


class _LazyChoices:
    """argparse ``choices`` read on first use (checking a value, an error message, a command's --help),
    so that building the parser imports no torch; give such an argument a ``metavar``."""

    def __init__(self, load):
        self._load, self._names = load, None

    def _all(self) -> list:
        if self._names is None:
            self._names = list(self._load())
        return self._names

    def __iter__(self):
        return iter(self._all())

    def __contains__(self, name) -> bool:
        return name in self._all()

    def __len__(self) -> int:
        return len(self._all())


def _sampler_names():
    from .samplers import SAMPLERS

    return list(SAMPLERS)


def _fid_choices():
    from .metrics import FID_BACKENDS

    return ("auto",) + tuple(FID_BACKENDS)


SAMPLER_CHOICES, FID_CHOICES = _LazyChoices(_sampler_names), _LazyChoices(_fid_choices)


def parse_params(items: Sequence[str]) -> dict:
    from .config import parse_value

    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--param expects key=value, got {item!r} (e.g. --param sigma=2.5)")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_value(v)
    return out


def parse_steps(text: Optional[str], T: int) -> list[int]:
    if not text:
        return sorted({0, T // 4, T // 2, (3 * T) // 4, T})
    steps = []
    for part in text.split(","):
        part = part.strip()
        if part.upper() == "T":
            steps.append(T)
            continue
        try:
            steps.append(int(part))
        except ValueError:
            raise ConfigError(f"--steps takes whole numbers separated by commas (e.g. 0,5,10,T), got {part!r}") from None
    from .timesteps import library_t

    return [library_t(s, T) for s in steps]   # the library's rule: 0..T


def load_input(spec: str, n: int, channels: Optional[int], size: Optional[int]):
    """An image file, a folder of images, or a built-in data set name (its test split)."""
    import torch

    from . import data
    from .images import load_images

    if spec.startswith("folder:"):
        spec = spec[len("folder:"):]
    if os.path.exists(spec):
        x = load_images(spec, channels=channels, size=(size, size) if size else None, limit=n)
        return x
    if spec in data.names():
        ds = data.load(spec, "test", image_size=size, channels=channels)
        return torch.stack([ds[i][0] for i in range(min(n, len(ds)))])
    raise InputError(
        f"input not found: {spec!r}; give an image file, a folder of images, or a data set name "
        f"({', '.join(data.names())})"
    )


# ---------------------------------------------------------------------------- degrade, degradations
def cmd_degrade(args) -> int:
    import torch

    from . import degradations as deg
    from .figures import degradation_strip
    from .images import atomic_save

    if args.t is not None or args.run:
        return _degrade_pairs(args)
    name, params, size, channels = _degradation_settings(args)
    args.out = args.out or "degrade.png"
    check_writable(args.out)
    from .images import image_format

    image_format(args.out)  # x.tiff is a TIFF, x.xyz refused, before any work
    check_files([args.out], "degrade")  # never over a file colddiff did not write
    x0 = load_input(args.input, 8 if args.n is None else args.n, channels, size)
    for key, have in (("image_size", int(x0.shape[-1])), ("channels", int(x0.shape[1]))):
        if key in params and params[key] != have:
            raise ConfigError(f"--param {key}={params[key]} contradicts the input, whose images have {key} {have}; "
                              f"drop --param {key} (it is taken from the input) or convert the input with "
                              f"--{'size' if key == 'image_size' else 'channels'} {params[key]}")
        params[key] = have
    D = deg.create(name, **params)
    steps = parse_steps(args.steps, D.T)
    ctx = D.context(x0, torch.Generator().manual_seed(args.seed))
    strip = degradation_strip(D, x0, steps, ctx)
    with owned_files([args.out], "degrade"):
        out = atomic_save(strip, args.out)
    print(f"wrote {out}: {x0.shape[0]} image(s) x {len(steps)} steps of {D!r}")
    return 0


def _degradation_settings(args) -> tuple:
    """(name, params, size, channels) of ``degrade --degradation NAME`` or ``--preset NAME`` (a preset's degradation
    at its image size and channels unless --size / --channels say otherwise), with --param and --T applied; an
    unknown or missing name is refused before any image is read."""
    from . import degradations as deg

    name, params, size, channels = args.degradation, {}, args.size, args.channels
    if getattr(args, "preset", None):
        from .presets import preset

        cfg = preset(args.preset)
        if name and name != cfg.degradation.name:
            raise ConfigError(f"--preset {args.preset} uses the {cfg.degradation.name} degradation, not {name}; "
                              "give one of --preset and --degradation")
        name, params = cfg.degradation.name, dict(cfg.degradation.params, T=cfg.degradation.T)
        size = size if size is not None else cfg.data.image_size
        channels = channels if channels is not None else cfg.data.channels
    if not name:
        raise ConfigError("say which degradation: --degradation NAME (see `colddiff degradations`) or --preset NAME "
                          "(see `colddiff presets`)")
    deg.get_class(name)
    params.update(parse_params(args.param))
    if args.T is not None:
        params["T"] = args.T
    return name, params, size, channels


def _degrade_pairs(args) -> int:
    """``degrade --t N`` (with --run, --preset or --degradation): test pairs, one degraded image per input at its own size."""
    from . import degradations as deg
    from .pairs import degrade_files

    if args.t is None:
        raise ConfigError("--run takes the run's degradation to make test pairs: give the step too, e.g. --t 5 "
                          "(one degraded image per input, at its own size, into the folder --out)")
    if sum(map(bool, (args.run, args.preset, args.degradation))) != 1:
        raise ConfigError("say whose degradation makes the test pairs: one of --run RUN, --preset NAME or "
                          "--degradation NAME")
    for opt, val in (("--steps", args.steps), ("--size", args.size)):
        if val is not None:
            raise ConfigError(f"--t writes one degraded image per input at the input's own size; drop {opt} "
                              "(it is for the strip of several steps)")
    if not args.out:
        raise ConfigError("--t writes a folder of degraded images: give it with --out FOLDER (e.g. --out blurred/)")
    check_writable(args.out, folder=True)
    channels = args.channels
    if args.run:
        if args.param or args.T is not None:
            raise ConfigError("--run uses the run's own degradation; drop --param / --T (or use --degradation)")
        run = _load_run(argparse.Namespace(run=args.run, device="cpu", raw=False))
        D, source = run.D, str(run.folder)
        channels = channels if channels is not None else run.cfg.data.channels
    else:
        name, params, size, channels = _degradation_settings(args)   # size: the preset's (--size is refused above)
        params.setdefault("image_size", size if size is not None else _first_image_side(args.input))
        if channels is not None:
            params["channels"] = channels
        D = deg.create(name, **params)
        source = f"preset {args.preset}" if args.preset else "--degradation"
    res = degrade_files(D, args.input, args.out, args.t, channels=channels, seed=args.seed, limit=args.n,
                        source=source)
    print(f"wrote {len(res['images'])} image(s) degraded by {res['degradation']} at t={res['t']}, each at its own "
          f"size: {args.out}/ (record: degrade.json)")
    return 0


def _first_image_side(spec: str) -> int:
    """The shorter side of the first image of a file or folder (a degradation's nominal size for test pairs)."""
    from PIL import Image

    from .images import DECODE_ERRORS, list_images, upright_size

    path = Path(spec).expanduser()
    files = [path] if path.is_file() else list_images(path) if path.is_dir() else []
    if not files:
        raise InputError(f"no images found at {spec}; give an image file or a folder of images")
    try:
        with Image.open(files[0]) as im:
            return min(upright_size(im))
    except DECODE_ERRORS as e:
        raise InputError(f"cannot read image {files[0]}: {type(e).__name__}: {e}") from None


def add_degrade(sub):
    d = _command(sub, "degrade", "write a strip of D(x0, t) at chosen steps, or test pairs at step t",
                 "Apply a degradation at several steps and write a PNG strip (one row per image), or with --t N\n"
                 "degrade every input image at step N at its own size into a folder (test pairs).", """
        examples:
          colddiff degrade --degradation blur --input mnist-5k --n 8 --steps 0,5,10,20 --out strip.png
          colddiff degrade --degradation mask --param T=50 --input photo.png --out mask.png
          colddiff degrade --degradation blur --param schedule=exponential --param sigma=1 \\
              --param kernel_size=27 --param padding=circular --param T=300 --input faces/ --out gen.png
          colddiff --plugin mine.py degrade --degradation mine --input mnist-5k --out mine.png
          colddiff degrade --preset celeba-snow --input faces/ --steps 0,50,100,150,200 --out snow.png
          colddiff degrade --run runs/photos --t 5 --input photos/ --out blurred/   # test pairs
          colddiff degrade --preset folder-blur --t 5 --input photos/ --out blurred/

        With --t N every image of --input is degraded at step N at its own size (degradations that
        act the same at every pixel, as restore allows) and written as --out/<same name>.png, with
        degrade.json; `colddiff restore RUN --input blurred/` names its results after the same stems.
        """, cmd_degrade)
    d.add_argument("--degradation", "-d", default=None, help="degradation name (see `colddiff degradations`)")
    d.add_argument("--preset", default=None, help="use a preset's degradation, T and parameters, at its image size "
                   "and channels (see `colddiff presets`); --param, --T, --size, --channels override")
    d.add_argument("--run", default=None, metavar="RUN", help="with --t: use a trained run's degradation (a run "
                   "folder, checkpoint, exported model or hf://owner/name) and its channels")
    d.add_argument("--t", default=None, help="test pairs: degrade each input at this step (1..T) at its own size "
                   "and write one image per input into the folder --out")
    d.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                   help="degradation parameter, repeatable (e.g. --param sigma=2 --param padding=circular)")
    d.add_argument("--T", type=TRAIN_STEPS, default=None, help="number of steps (same as --param T=N)")
    d.add_argument("--input", "-i", required=True,
                   help="image file, folder of images, or data set name (e.g. mnist-5k: its test split)")
    d.add_argument("--n", type=COUNT, default=None, help="at most this many images (default 8 for a strip, all "
                   "with --t)")
    d.add_argument("--steps", default=None, help="comma-separated steps, e.g. 0,5,10,T (default: 0, T/4, T/2, 3T/4, T)")
    d.add_argument("--channels", type=int, choices=(1, 3), default=None, help="convert images to 1 or 3 channels")
    d.add_argument("--size", type=argtype("whole", 1, PIXELS), default=None, help="resize images to SIZE×SIZE")
    d.add_argument("--seed", type=SEED, default=0, help="seed of the random parts (mask centres, noise, ...; "
                   "0..4294967295)")
    d.add_argument("--out", "-o", default=None, help="output PNG (default degrade.png); with --t, the output folder")


def cmd_degradations(args) -> int:
    from . import degradations as deg

    for name in deg.names():
        cls = deg.get_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        params = ", ".join(f"{k}={v!r}" for k, v in deg.parameters(name).items()
                           if k not in ("image_size", "channels"))
        print(f"{name:<11} {doc}")
        print(textwrap.indent(textwrap.fill(params, 88), " " * 12))
    return 0


def add_degradations(sub):
    _command(sub, "degradations", "list the degradations and their parameters",
             "List the registered degradations (built in and plug-ins) and their parameters.",
             "example:\n  colddiff degradations\n  colddiff --plugin mine.py degradations", cmd_degradations)


def cmd_check_degradation(args) -> int:
    from . import degradations as deg
    from .degradations.checks import check, example

    params = parse_params(args.param)
    cls = deg.get_class(args.name)
    if params or args.T is not None:
        if args.T is not None:
            params["T"] = args.T
        params.setdefault("T", 8)
        D = deg.create(args.name, image_size=args.size, channels=args.channels, **params)
    else:
        D = example(cls, image_size=args.size, channels=args.channels)
    print(f"checking {D!r} on {args.channels}x{args.size}x{args.size} images")
    results = check(D)
    for r in results:
        print(r.line())
    failed = [r.name for r in results if r.ok is False]
    passed = sum(r.ok is True for r in results)
    print(f"{passed} passed, {len(failed)} failed, {len(results) - passed - len(failed)} skipped")
    if failed:
        raise ConfigError(f"{args.name} fails {len(failed)} propert{'y' if len(failed) == 1 else 'ies'}: "
                          f"{', '.join(failed)} (details above)")
    return 0


def add_check_degradation(sub):
    c = _command(sub, "check-degradation", "run the property suite on a degradation (yours included)",
                 "Check the properties every degradation must have: D(x0, 0) == x0, shape/dtype/device, range,\n"
                 "closed form == step-by-step, cost flat in t, a context reproducible from a seed, one batch axis.",
                 """
        examples:
          colddiff check-degradation blur
          colddiff --plugin mine.py check-degradation mine
          colddiff check-degradation mask --param position=random --T 20 --size 32 --channels 3
        """, cmd_check_degradation)
    c.add_argument("name", help="degradation name (see `colddiff degradations`)")
    c.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                   help="degradation parameter, repeatable (default: the family's example settings)")
    c.add_argument("--T", type=TRAIN_STEPS, default=None, help="number of steps")
    c.add_argument("--size", type=argtype("whole", 8, 1024), default=16, help="image size for the checks (default 16)")
    c.add_argument("--channels", type=int, choices=(1, 3), default=1, help="image channels (default 1)")


def cmd_networks(args) -> int:
    from .networks import ARCHS, describe
    from .presets import PRESETS

    print("architectures (model.arch):")
    for name, arch in ARCHS.items():
        print(f"  {name:<20} {arch.description}")
    from .tables import text_table

    print("\nthe presets' networks:")
    rows = []
    for r in describe({name: p.model_kwargs() for name, p in PRESETS.items()}):
        s = dict(r["settings"])
        c, dim, mults = s.pop("channels"), s.pop("dim"), "-".join(map(str, s.pop("dim_mults")))
        other = " ".join(f"{k}={'-'.join(map(str, v)) or '-' if isinstance(v, tuple) else v}" for k, v in s.items())
        rows.append([r["arch"], c, dim, mults, other, f"{r['params']:,}", ", ".join(r["used_by"])])
    print(text_table(["arch", "C", "dim", "mults", "other", "params", "presets"], rows, right={1, 2, 5}))
    return 0


def add_networks(sub):
    _command(sub, "networks", "the network architectures and the presets' networks with their parameter counts",
             "List the architectures a run can choose with model.arch, then every distinct network of the presets: "
             "its architecture, widths and parameter count, and the presets that train it.",
             "example:\n  colddiff networks", cmd_networks)


# ---------------------------------------------------------------------------- train, presets, data
def _log_lines() -> None:
    """Show training's INFO log lines and the progress lines of long work without a bar (its progress off a
    terminal) on stderr as ``colddiff: ...``."""
    import logging

    class _Stderr(logging.StreamHandler):  # whatever sys.stderr is when a line is written
        stream = property(lambda self: sys.stderr, lambda self, value: None)

    for name in ("colddiff.training", "colddiff.progress"):
        lg = logging.getLogger(name)
        if not lg.handlers:
            h = _Stderr()
            h.setFormatter(logging.Formatter("colddiff: %(message)s"))
            lg.addHandler(h)
        if lg.level == logging.NOTSET or lg.level > logging.INFO:
            lg.setLevel(logging.INFO)


def cmd_train(args) -> int:
    from .config import run_name
    from .presets import resolve_config
    from .training import resume_config, train

    if args.resume:
        if args.preset or args.config:
            raise ConfigError("--resume takes the configuration from the run folder; drop --preset/--config")
        if args.out and Path(args.out).resolve() != Path(args.resume).resolve():
            raise ConfigError(f"--resume continues the run in {args.resume} there; drop --out {args.out} "
                              "(or copy the run folder first and resume the copy)")
        out = Path(args.resume)
        cfg = resume_config(out, args.set)
    else:
        cfg = resolve_config(args.preset, args.config, args.set)
        out = Path(args.out) if args.out else Path("runs") / cfg.preset
    cfg.build_degradation()  # fail early on impossible degradation settings
    from .data.folders import check_out_outside

    check_out_outside(cfg.data.name, out)  # a run inside its own data folder would train on its figures
    check_writable(out, folder=True)
    _log_lines()
    summary = train(cfg, out, resume=bool(args.resume), progress=not args.no_progress, log_to=args.log)
    if int(os.environ.get("RANK", 0)) != 0:
        return 0  # under torchrun only rank 0 reports
    if summary.get("stopped_early"):
        print(f"stopped at step {summary['step']} of {summary['steps']}; checkpoint saved: {summary['checkpoint']}\n"
              f"continue with: colddiff train --resume {out}")
        return EXIT_INTERRUPTED  # not 0: a script must not take a stopped run for a finished one
    else:
        print(f"trained {run_name(cfg)} to step {summary['step']} in {summary['elapsed_s']:.0f} s; "
              f"final loss {summary['final_loss']:.4f}; run folder: {out}")
    return 0


def add_train(sub):
    tr = _command(sub, "train", "train a restoration network (paper recipe, exact resume, DDP)",
                  "Train R with the paper's recipe: L1 loss on R(D(x0, t), t), Adam, gradient accumulation, EMA.\n"
                  "The resolved config is written to OUT/config.toml and into every checkpoint.", """
        examples:
          colddiff train --preset mnist5k-blur --out runs/blur             # ~10 minutes on 2 CPU cores
          colddiff train --preset cifar10-blur --set train.batch_size=64 train.lr=1e-4 --out runs/c10
          colddiff train --resume runs/blur --set train.steps=8000        # continue (or extend) a run
          colddiff --plugin mine.py train --preset mnist5k-blur --set degradation.name=mine --out runs/mine
          torchrun --nproc_per_node 4 -m colddiff train --preset celeba-blur --out runs/celeba
          colddiff train --preset cifar10-blur --set train.precision=bf16 train.compile=default train.channels_last=true
        """, cmd_train)
    tr.add_argument("--preset", help="named configuration (see `colddiff presets`)")
    tr.add_argument("--config", help="TOML file with config sections; overrides the preset's values")
    tr.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                    help="override config keys: train.steps=1000 model.dim=32 degradation.sigma=2 (several after "
                         "one --set, or --set repeated); degradation.name=OTHER drops the old family's parameters")
    tr.add_argument("--out", help="run folder (default runs/PRESET)")
    tr.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its latest checkpoint")
    tr.add_argument("--no-progress", action="store_true",
                    help="no progress bar: one log line every train.log_every steps instead (as off a terminal)")
    tr.add_argument("--log", choices=("none", "tensorboard", "wandb"), default="none",
                    help="where the loss, learning rate and speed go besides RUN/metrics.jsonl: tensorboard "
                         "(RUN/tensorboard/; pip install 'colddiff[tensorboard]'), wandb (Weights & Biases; "
                         "pip install 'colddiff[wandb]') or none (default)")


def cmd_import_official(args) -> int:
    from .official import import_official

    res = import_official(args.checkpoint, args.preset, args.out, args.set)
    if res["ignored"]:
        print(f"colddiff: note: left out {len(res['ignored'])} tensors of the authors' diffusion wrapper, not of the "
              f"network (e.g. {res['ignored'][0]})", file=sys.stderr)
    print(f"imported {res['source']} (the authors' step {res['step']:,}, {res['tensors']} tensors, "
          f"{'raw and EMA' if res['ema'] else 'raw'} weights, sha256 {res['sha256'][:12]}...) as a {args.preset} run: "
          f"{res['out']}")
    return 0


def add_import_official(sub):
    im = _command(sub, "import-official", "turn a checkpoint of the authors' code into a colddiff run",
                  "Read a checkpoint written by the authors' Trainer (arpitbansal297/Cold-Diffusion-Models: a\n"
                  "torch.save of {'step', 'model', 'ema'}; plain tensors only, nothing that needs code), check every\n"
                  "tensor against the preset's network and write an ordinary run folder (config.toml, a\n"
                  "checkpoint with the raw and EMA weights, imported.json with the file's name, sha256 and step)\n"
                  "that generate, restore, evaluate, report and export take like a trained run.", """
        examples:
          colddiff import-official celebA_blur_gen/model.pt --preset celeba-blur-gen --out runs/celeba-blur-gen-authors
          colddiff generate runs/celeba-blur-gen-authors --n 64 --out generated/
          colddiff import-official model.pt --preset mnist-blur --set model.dim=32 --out runs/narrow
        """, cmd_import_official)
    im.add_argument("checkpoint", help="the authors' checkpoint file (e.g. model.pt)")
    im.add_argument("--preset", required=True,
                    help="the experiment the checkpoint was trained for (see docs: import-official)")
    im.add_argument("--out", required=True, help="run folder to write (new or empty)")
    im.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                    help="override config keys as in `train` (e.g. model.dim=32 for a narrower network)")


def cmd_presets(args) -> int:
    from .presets import PRESETS, preset

    if args.show:
        from .paper import provenance

        print(preset(args.show).to_toml(), end="")
        prov = provenance(args.show)
        if prov is not None:  # as TOML comments, so the output still loads as a --config file
            print("\n" + "\n".join(f"# {line}" for line in prov.lines()))
        return 0
    width = max(map(len, PRESETS))
    for name, p in PRESETS.items():
        print(f"{name:<{width}}  {p.data.name:<9} {p.data.image_size:>3}px  {p.description}")
    return 0


def add_presets(sub):
    pr = _command(sub, "presets", "list the named training configurations",
                  "List the presets (one per experiment of the paper, plus small CPU ones).",
                  "examples:\n  colddiff presets\n  colddiff presets --show mnist5k-blur", cmd_presets)
    pr.add_argument("--show", metavar="NAME", help="print one preset's full configuration as TOML (paper presets: "
                    "with the experiment, the authors' setting, the files of their code checked and every "
                    "remaining difference, as comments)")


def cmd_data(args) -> int:
    from . import data
    from .data.common import cache_root, show

    action, root = args.action, args.root
    if action is None:
        raise ConfigError("say what to do: colddiff data list | info NAME | verify NAME | download NAME | prepare NAME")
    if root is not None and action != "download" and not Path(root).expanduser().is_dir():
        raise InputError(f"--root {root} is not a folder{'' if Path(root).expanduser().exists() else ' (it does not exist)'}; "
                         "give the folder that holds the data set's files (downloads create it)")
    if action == "list":
        rows = data.summary(root)
        print(f"{'name':<14} {'status':<16} {'image':<9} {'train':>8} {'test':>7}  {'licence':<24} source")
        for r in rows:
            print(f"{r['name']:<14} {r['status']:<16} {r['image']:<9} {r['splits'].get('train', 0):>8,} "
                  f"{r['splits'].get('test', 0):>7,}  {r['licence']:<24} {r['source']}")
            for where in r["where"]:
                print(f"{'':<14} found in {where}")
            if r["note"] and not r["where"]:
                print(f"{'':<14} {r['note']}")
        print(f"{'folder:PATH':<14} {'(any folder)':<16} any folder of images, recursively; labels from sub-folders")
        print(f"\nfiles are looked for in --root DIR, then {show(cache_root())}/NAME (set $COLDDIFF_DATA to move it), "
              "then system copies;\n`colddiff data info NAME` names the exact files, their checksums and where to put them")
        return 0
    if action == "info":
        print(data.info(args.name, root))
        return 0
    if action == "verify":
        checks = data.verify(args.name, root)
        for c in checks:
            print(c)
        bad = [c for c in checks if c.ok is False]
        if bad:
            raise InputError(f"{len(bad)} of {len(checks)} file(s) of {args.name} failed the check "
                             f"({', '.join(c.path.name for c in bad)}); delete them and run "
                             f"`colddiff data download {args.name}`, or fetch them again by hand "
                             f"(`colddiff data info {args.name}`)")
        good = sum(c.ok is True for c in checks)
        print(f"{args.name}: {good} of {len(checks)} checked file(s) match" +
              ("" if good == len(checks) else "; the others have no published checksum"))
        return 0
    if action == "prepare":
        from .data import prepare
        from .data.prepared import describe

        splits = [s.strip() for s in args.split.split(",")] if args.split else ()
        for path, man in prepare(args.name, root, image_size=args.size, channels=args.channels, splits=splits,
                                 progress=not args.quiet):
            print(describe(path, man))
        print(f"training and evaluation on {args.name} at this size read these arrays from now on "
              "(a changed source file makes them ignored, with a warning, until you prepare again)")
        return 0
    folder = data.fetch(args.name, root, progress=None if args.quiet is False else False)
    print(f"{args.name}: files in {folder}")
    return 0


def add_data(sub):
    da = _command(sub, "data", "the data sets: list, details, checksums, downloads",
                  "List the built-in data sets and whether they are here, show where their files go, check\n"
                  "them against the published checksums, or download those that have an official mirror.", """
        examples:
          colddiff data list
          colddiff data info celeba                 # the exact files, checksums and where to put them
          colddiff data download mnist              # into ~/.cache/colddiff/mnist ($COLDDIFF_DATA)
          colddiff data verify cifar10 --root /data/cifar10
          colddiff data info folder:~/pictures/faces
          colddiff data prepare celeba              # decode once into a memory-mapped uint8 .npy beside the data
          colddiff data prepare folder:~/faces --size 64 --channels 3
        """, cmd_data)
    da_sub = da.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    for action, help_text in (("list", "every built-in data set, its size, licence and status"),
                              ("info", "details of one data set (or folder:PATH)"),
                              ("verify", "check the files that are here against their published checksums"),
                              ("download", "download a data set that has an official mirror"),
                              ("prepare", "decode a folder data set once into a memory-mapped uint8 array "
                                          "beside it (fast loading)")):
        a = da_sub.add_parser(action, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
                              epilog=f"example:\n  colddiff data {action}" + ("" if action == "list" else
                                                                    " celeba" if action == "prepare" else " mnist"),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        if action != "list":
            a.add_argument("name", help="data set name (see `colddiff data list`)"
                           + (" or folder:PATH" if action in ("info", "prepare") else ""))
        a.add_argument("--root", default=None, help="folder holding the data set's files (searched first; "
                       "downloads go there)")
        if action in ("download", "prepare"):
            a.add_argument("--quiet", action="store_true", help="no progress bar")
        if action == "prepare":
            a.add_argument("--size", type=argtype("whole", 1, 4096), default=None,
                           help="image_size as the run will ask for it (data.image_size; default: the data set's)")
            a.add_argument("--channels", type=int, default=None, choices=(1, 3),
                           help="channels as the run will ask for them (data.channels; default: the data set's)")
            a.add_argument("--split", default=None, help="comma-separated splits (default: all)")
    da.set_defaults(action=None, root=None, quiet=False, size=None, channels=None, split=None)


# ---------------------------------------------------------------------------- weights (FID Inception)
def cmd_weights(args) -> int:
    from . import inception

    if args.action is None:
        raise ConfigError("say what to do: colddiff weights info | verify [--path FILE]")
    if args.action == "info":
        print("\n".join(inception.weights_info()))
        return 0
    path = inception.verify_weights(args.path)
    print(f"ok: {path} holds the FID Inception-v3 weights"
          + (f" (sha256 {inception.WEIGHTS_SHA256})" if path.name == inception.WEIGHTS_NAME else
             " (keys and shapes checked; the checksum is compared only under the published file name)"))
    return 0


def add_weights(sub):
    we = _command(sub, "weights", "the FID Inception weights: where the file goes, and a check of it",
                  "The standard FID network's weights file: where colddiff looks for it (info) and whether the\n"
                  "file there is the published one and loads (verify). With the file in place, evaluate, generate\n"
                  "and report use Inception FID by default (--fid auto); without it, the offline classifier FID.", """
        examples:
          colddiff weights info
          colddiff weights verify
          colddiff weights verify --path /models/pt_inception-2015-12-05-6726825d.pth
        """, cmd_weights)
    we_sub = we.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    we_sub.add_parser("info", help="where the Inception weights file goes, its checksum and whether it is there",
                      description="Where the Inception weights file goes, its checksum and whether it is there.")
    v = we_sub.add_parser("verify", help="check the Inception weights file (published SHA-256, loads into the network)",
                          description="Check the Inception weights file: the published SHA-256 and that it loads.")
    v.add_argument("--path", default=None, help="the file to check (default: where colddiff looks for it)")
    we.set_defaults(action=None, path=None)


# ---------------------------------------------------------------------------- commands on a trained run
def _run_args(q):
    q.add_argument("run", metavar="RUN", help="run folder written by `colddiff train --out` (or a checkpoint file), "
                   "a model folder written by `colddiff export`, or hf://owner/name[@revision]")
    q.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda | cuda:N")
    q.add_argument("--raw", action="store_true", help="use the raw weights instead of the EMA weights")
    q.add_argument("--no-progress", action="store_true", help="no progress bars")
    q.add_argument("--cuda-graphs", action="store_true",
                   help="GPU: replay each sampling loop from CUDA graphs (same results within float tolerance, "
                        "fewer kernel launches; no effect on a CPU)")


def _sample_steps_arg(q, what: str = "the iterative samplers",
                     default: str = "all: every step, as in the paper") -> None:
    # Not --steps: that is degrade's and reproduce's list of steps to show and quickstart's training steps
    # (train.steps); not --schedule: that is the degradation's own schedule (blur sigma_t, noise cosine).
    q.add_argument("--sample-steps", default=None, metavar="N|N:SPACING|LIST",
                   help=f"the steps {what} visit from t down to 0: N network calls spread evenly in t (e.g. 5), "
                        "N:quadratic (dense near t=0, for degradations that lose most early), or a list ending at "
                        f"0 (20,10,5,0); Algorithm 2 jumps x_s = x_t - D(x0_hat, t) + D(x0_hat, s); default {default}")


def _load_run(args):
    from .runs import load_run

    return load_run(args.run, device=args.device, ema=not args.raw, cuda_graphs=getattr(args, "cuda_graphs", False))


def cmd_evaluate(args) -> int:
    from .evaluation import evaluate, write_evaluation

    run = _load_run(args)
    check_writable(run.folder / "evaluation", folder=True, what="the run's evaluation folder")
    from .evaluation import eval_name
    from .timesteps import user_t

    t = user_t(args.t, run.T)  # the files this evaluation writes: never over one colddiff did not write
    names = (["generation.md", "generation.csv", "generation.json", "generation-histogram.png"] if args.generation
             else [f"{eval_name(t, run.T, p)}.{ext}" for p in ("colddiff", "paper") for ext in ("md", "csv", "json")])
    check_files([run.folder / "evaluation" / n for n in names], "evaluate", what="evaluate:")
    if args.generation:
        check_writable(run.folder / "generation", folder=True, what="the run's generation folder")
        from .generation_eval import evaluate_generation, write_generation_evaluation

        gev = evaluate_generation(run, n=args.gen_n, noise=args.noise, fid=args.fid, seed=args.seed,
                                  progress=not args.no_progress, schedule=args.sample_steps)
        paths = write_generation_evaluation(gev, run.folder / "evaluation")
        print(gev.text())
        print(f"\nwrote {paths['md']} (and .csv, .json, {paths['png'].name}) in {gev.seconds:.0f} s; generated images "
              f"in {run.folder / 'generation'}/")
        return 0
    ev = evaluate(run, n=args.n, t=args.t, fid=args.fid, classifier=not args.no_classifier,
                  batch_size=args.batch_size, seed=args.seed, progress=not args.no_progress, protocol=args.protocol,
                  paper_sampler=args.paper_sampler, schedule=args.sample_steps)
    paths = write_evaluation(ev, run.folder / "evaluation")
    print(ev.text())
    print(f"\nwrote {paths['md']} (and .csv, .json) in {ev.seconds:.0f} s; "
          f"`colddiff report {args.run}` puts it into the HTML report")
    return 0


def add_evaluate(sub):
    ev = _command(sub, "evaluate", "the paper's Table 1 for a run: FID, SSIM, RMSE, PSNR, class kept",
                  "Restore N held-out test images from t=T (or --t) with direct reconstruction, Algorithm 1 and\n"
                  "Algorithm 2, and measure each against the clean images. Writes RUN/evaluation/restoration.{md,csv,json}.",
                  """
        examples:
          colddiff evaluate runs/mnist5k-blur                     # 500 test digits, classifier FID
          colddiff evaluate runs/mnist5k-blur --t 10 --n 200
          colddiff evaluate runs/mnist-blur --protocol paper       # as the authors' test scripts
          colddiff evaluate runs/celeba-blur --fid inception      # needs the Inception weights file
          colddiff evaluate runs/mnist5k-blur --generation        # generated images (see `colddiff generate`)
        """, cmd_evaluate)
    _run_args(ev)
    ev.add_argument("--n", type=COUNT, default=None,
                    help="held-out images to restore (default: 500 under --protocol colddiff, the whole test split "
                         "but its first image under --protocol paper)")
    ev.add_argument("--protocol", choices=("paper", "colddiff"), default=None,
                    help="paper: as the authors' test scripts (test split but index 0, blur/SR images enlarged "
                         "1.12x and centre-cropped, CelebA SR/inpainting seeded random crops and flips, 1,000 "
                         "seeded-permutation images for snow/colourisation, global unclamped RMSE, the authors' "
                         "rows); colddiff: the first "
                         "--n images, per-image clamped metrics, every sampler; default paper for the paper presets, "
                         "colddiff otherwise")
    ev.add_argument("--paper-sampler", choices=("algorithm2", "authors-shifted"), default=None,
                    help="--protocol paper: the iterative sampler (default algorithm2, the paper's; authors-shifted: "
                         "the update of the authors' snow and colourisation code, one step early)")
    ev.add_argument("--t", type=int, default=None, help="restore from this step (default T)")
    ev.add_argument("--fid", choices=FID_CHOICES, metavar="BACKEND", default="auto",
                    help="FID features (%(choices)s): classifier (trained by colddiff, offline), inception "
                         "(standard FID) or none; auto = inception when its weights file is in place (`colddiff weights info`; then the "
                         "classifier FID is an extra column on labelled sets), else classifier on labelled data "
                         "sets, else none")
    ev.add_argument("--no-classifier", action="store_true",
                    help="skip the classifier (no 'class kept' column and no classifier FID)")
    ev.add_argument("--batch-size", type=BATCH, default=100, help="images per sampler batch (default 100)")
    ev.add_argument("--seed", type=SEED, default=0, help="seed of the random parts of the degradation "
                    "(0..4294967295)")
    ev.add_argument("--generation", action="store_true",
                    help="evaluate generated images instead (class histogram, entropy, blank share, FID)")
    ev.add_argument("--gen-n", type=COUNT, default=500, help="with --generation: images to generate (default 500)")
    ev.add_argument("--noise", type=REAL0, default=0.002,
                    help="with --generation: the --noise setting compared against no noise (default 0.002)")
    _sample_steps_arg(ev, "Algorithm 1 and 2 (and DDIM; with --generation: every setting's sampler)")


def cmd_restore(args) -> int:
    from .restoration import OVERLAP, default_schedule, restore_defaults, restore_files
    from .samplers import parse_schedule

    parse_schedule(args.sample_steps)  # a malformed --sample-steps: before anything is claimed or loaded
    check_writable(args.out, folder=True)
    out = claim(args.out, "restore", inputs=[args.input])  # before loading anything; not claimed again
    run = _load_run(args)
    t, sampler = restore_defaults(run, args.t, args.sampler)  # from the run: said up front, before any work
    schedule = default_schedule(run, args.sample_steps)   # --sample-steps, else the run's [restore] sample_steps
    if args.sampler is None and sampler != "algorithm2":
        print(f"colddiff: note: {run.D.name} is random per image, so this run restores with --sampler {sampler} "
              f"from the given --t {t}", file=sys.stderr)
    overlap = OVERLAP if args.overlap is None else args.overlap
    _log_lines()  # the tile count, the time estimate and, without a bar, progress lines at a steady rate
    res = restore_files(run, args.input, out, t=t, sampler=sampler, resize=args.resize,
                        progress=not args.no_progress, tile=args.tile, overlap=overlap, schedule=schedule,
                        consistent=args.auto_tolerance)
    for w in res["warnings"]:
        print(f"colddiff: warning: {w}", file=sys.stderr)
    ts = res["t_values"]
    print(f"restored {len(res['images'])} image(s) at t={ts[0] if len(ts) == 1 else f'{ts[0]}..{ts[-1]}'}"
          f"{' (estimated)' if t == 'auto' else ''} with {' and '.join(res['samplers'])}"
          f"{'' if res['sample_steps'] == 'all' else ' (steps ' + res['sample_steps'] + ')'}: {args.out}/ "
          f"(side by side: {res['sheet']})")
    return 0


def add_restore(sub):
    rs = _command(sub, "restore", "restore your own already-degraded images",
                  "Restore images that are already degraded (by the run's kind of degradation) from step t,\n"
                  "or estimate t per image with --t auto. Writes NAME.direct.png, NAME.algorithm2.png,\n"
                  "a side-by-side sheet.png and restore.json into --out.", """
        examples:
          colddiff restore runs/mnist5k-blur --input blurry.png --t auto --out restored/
          colddiff restore runs/mnist5k-blur --input scans/ --t 12 --out restored/ --sampler algorithm1
          colddiff restore runs/photos-blur --input photo.jpg --out restored/          # at the photo's own size
          colddiff restore runs/photos-blur --input big.jpg --tile 256 --overlap 32 --out restored/
          colddiff restore runs/mnist5k-inpaint --input holes.png --t 30 --out restored/  # random masks: direct

        Runs whose degradation is local and shift-invariant (blur, snow, desaturation, noise, random
        masks; resolution on sides divisible by 2^T) restore a photo of any size at its own size:
        whole, or in overlapping tiles (raised-cosine blending) with --tile or when the image is larger
        than the network's lowest-level attention allows (192x192 pixels for the CPU presets' network).
        Other runs (centred masks, animorph) take images of the run's size; --resize scales others to
        it on the shorter side and crops the middle (never stretched, with a warning). Colour images
        are converted to the run's number of channels (with a warning). Sub-folders are kept.
        """, cmd_restore)
    _run_args(rs)
    rs.add_argument("--input", "-i", required=True, help="an image file or a folder of images")
    rs.add_argument("--t", default=None,
                    help="severity: a step 1..T, or auto to estimate it per image (default: auto; runs whose "
                         "degradation is random per image need a step)")
    rs.add_argument("--out", "-o", required=True, help="output folder")
    rs.add_argument("--sampler", choices=SAMPLER_CHOICES, metavar="NAME", default=None,
                    help="sampler written beside direct reconstruction: %(choices)s (default from the run: "
                         "algorithm2, or direct for degradations that are random per image)")
    rs.add_argument("--auto-tolerance", type=float, default=1.0, metavar="F",
                    help="--t auto: keep every t whose re-degraded restoration is within F times the best match "
                         "and take the sharpest of them (default 1.0: the best match alone; 1.25 suits blur made "
                         "by other tools, see docs/photos.md)")
    rs.add_argument("--resize", action="store_true",
                    help="runs restricted to their own size: scale other images to it (shorter side, aspect ratio "
                         "kept) and crop the middle")
    rs.add_argument("--tile", type=argtype("whole", 8, PIXELS), default=None, metavar="SIZE",
                    help="restore in overlapping SIZE x SIZE tiles (default: whole images while the network's "
                         "lowest level has at most 48x48 pixels, the largest such tiles above)")
    rs.add_argument("--overlap", type=argtype("whole", 0, PIXELS), default=None, metavar="PX",
                    help="pixels shared by neighbouring tiles, blended with raised-cosine weights (default 32)")
    _sample_steps_arg(rs, "--sampler", "the run's restore.sample_steps (all: every step, as in the paper, unless "
                      "the run sets it; folder-blur runs: 1, one update from t, see docs/photos.md)")


def cmd_generate(args) -> int:
    from .generation import check_size, generate, generation_defaults, write_generation
    from .samplers import get_sampler, parse_schedule

    check_size(args.n)  # a billion images: refused before anything is loaded
    schedule = parse_schedule(args.sample_steps)  # a malformed --sample-steps: before anything is claimed or loaded
    check_writable(args.out, folder=True)
    out = claim(args.out, "generate", inputs=[args.run])  # before loading anything; not claimed again
    run = _load_run(args)
    st = generation_defaults(run, args.sampler, args.noise, args.delta, args.k)  # unset options: the run's [generation]
    images = generate(run, args.n, seed=args.seed, batch_size=args.batch_size, progress=not args.no_progress,
                      schedule=schedule, **st)
    info = write_generation(images, out, {"run": str(run.folder), "checkpoint": run.checkpoint.name,
                                          "step": run.step, **st, "seed": args.seed, "degradation": repr(run.D),
                                          "sample_steps": str(schedule)})
    delta = f", delta {st['delta']:g}" if "delta" in get_sampler(st["sampler"]).options else ""
    steps = "" if args.sample_steps is None else f", steps {schedule}"
    print(f"generated {info['n_images']} image(s) with {st['sampler']} (noise {st['noise']:g}{delta}{steps}, "
          f"seed {args.seed}): "
          f"{args.out}/ (grid: {Path(args.out) / 'grid.png'}; settings: generation.json)")
    return 0


def add_generate(sub):
    gn = _command(sub, "generate", "generate images from scratch (blur, resolution, mask, animorph and noise runs)",
                  "Generate images from the fully degraded state with a trained run: blur runs start from a\n"
                  "constant image whose channel means come from a Gaussian mixture fitted to the training set;\n"
                  "resolution runs from a low-resolution image drawn from a mixture fitted to the whole end state;\n"
                  "mask runs from random solid colours; animorph runs from partner images; noise runs from\n"
                  "Gaussian noise. Writes NNNN.png, grid.png and generation.json into --out.", """
        examples:
          colddiff generate runs/mnist5k-blur-gen --n 64 --out gen/
          colddiff generate runs/mnist5k-blur-gen --n 64 --noise 0.002 --out gen-noise/   # broken symmetry
          colddiff generate runs/celeba-noise --n 16 --sampler ddim --out ddim/
          colddiff generate runs/blur-ihd --n 64 --sampler stochastic --delta 0.0125 --out ihd/
        """, cmd_generate)
    _run_args(gn)
    gn.add_argument("--n", type=COUNT, default=64, help="images to generate (default 64)")
    gn.add_argument("--out", "-o", required=True, help="output folder")
    gn.add_argument("--sampler", choices=SAMPLER_CHOICES, metavar="NAME", default=None,
                    help="algorithm2, stochastic (Algorithm 2 + per-step noise --delta), algorithm1, ddim (noise runs), "
                         "direct (one call of R); default: the run's generation.sampler (algorithm2 unless its preset "
                         "says otherwise)")
    gn.add_argument("--noise", type=REAL0, default=None,
                    help="std of Gaussian noise added to the start state (the paper's broken symmetry, e.g. 0.002; "
                         "default: the run's generation.noise, 0)")
    gn.add_argument("--delta", type=REAL0, default=None,
                    help="stochastic sampler: std of the noise added at every step (Inverse Heat Dissipation's δ; "
                         "default: the run's generation.delta)")
    gn.add_argument("--seed", type=SEED, default=0, help="seed of the start states (same seed, same images; "
                    "0..4294967295)")
    gn.add_argument("--k", type=argtype("count", hi=1024), default=None, help="blur and resolution runs: Gaussian-mixture components of the "
                    "start statistic (default: the run's generation.k, 1; mnist5k-sr: 10)")
    gn.add_argument("--batch-size", type=BATCH, default=256, help="images per sampler batch (default 256)")
    _sample_steps_arg(gn, "--sampler")


def cmd_report(args) -> int:
    from .evaluation import evaluate, write_evaluation
    from .evaluation import find_evaluations
    from .figures import write_figures
    from .report import generation_section, write_report

    from .figures import figure_paths

    run = _load_run(args)
    for target in (run.folder / "report.html", run.folder / "figures" / "report.png"):
        check_writable(target, what="the report")  # before the evaluation and the figures, not after
    check_files([run.folder / "report.html"] + figure_paths(run.folder), "report", what="report:")
    evs = find_evaluations(run.folder)
    extra = generation_section(run.folder)  # every file of the run is read (and checked) before the work
    if not evs and not args.no_eval:
        print(f"no evaluation in {run.folder / 'evaluation'} yet: evaluating {args.n} test images (--fid auto)",
              file=sys.stderr)
        ev = evaluate(run, n=args.n, fid="auto", progress=not args.no_progress)
        write_evaluation(ev, run.folder / "evaluation")
        evs = [ev]
    fig_t = evs[0].t if evs else run.T
    figs = write_figures(run, progress=not args.no_progress, t=fig_t)
    path = write_report(run, figs, evs, extra_sections=extra, fig_t=fig_t)
    print(f"wrote {path} ({len(figs)} figures, {len(evs)} evaluation table(s)); open it in a browser, e.g. "
          f"xdg-open {path}  (figures also in {run.folder / 'figures'})")
    return 0


def add_report(sub):
    rp = _command(sub, "report", "write RUN/report.html: config, evaluation, figures, loss curve",
                  "Write the figures (RUN/figures/*.png) and one self-contained HTML report (RUN/report.html)\n"
                  "with the config, the evaluation table(s), the figures and the loss curve. Evaluates the\n"
                  "run first (--n images) when it has no evaluation yet.", """
        examples:
          colddiff report runs/mnist5k-blur
          xdg-open runs/mnist5k-blur/report.html       # or open it in any browser; no server needed
        """, cmd_report)
    _run_args(rp)
    rp.add_argument("--n", type=COUNT, default=500, help="images for the evaluation when there is none (default 500)")
    rp.add_argument("--no-eval", action="store_true", help="do not evaluate a run that has no evaluation yet")


def cmd_quickstart(args) -> int:
    from .quickstart import quickstart, summary_text

    check_writable(args.out, folder=True)
    result = quickstart(args.out, steps=args.steps, t=args.t, n=args.n, gen_n=args.gen_n,
                        progress=not args.no_progress, schedule=args.sample_steps)
    print(summary_text(result))
    return 0


def add_quickstart(sub):
    qs = _command(sub, "quickstart", "train, evaluate, generate and report on the embedded MNIST digits (a few CPU minutes)",
                  "The whole method in one command, on the 5,000 embedded MNIST digits and 2 CPU cores in a few\n"
                  "minutes: train the mnist5k-sr preset (x2 downsampling to 4x4 px, the best cold generator of\n"
                  "python -m benchmarks.generation), evaluate restoration from t=2 (Table 1 layout), generate digits\n"
                  "from t=T (a Gaussian mixture over the 4x4 end state), write RUN/report.html and print a summary\n"
                  "with the targets. Interrupted? Run it again: it continues.", """
        examples:
          colddiff quickstart
          colddiff quickstart --out runs/qs --steps 3000      # longer training
        """, cmd_quickstart)
    qs.add_argument("--out", default="runs/quickstart", help="run folder (default runs/quickstart)")
    from .quickstart import RESTORE_T, STEPS

    qs.add_argument("--steps", type=TRAIN_STEPS, default=STEPS, help=f"training steps (default {STEPS}, ~3.5 min on 2 cores)")
    qs.add_argument("--t", type=int, default=RESTORE_T, help=f"restoration severity for the evaluation "
                    f"(default {RESTORE_T} of 3)")
    qs.add_argument("--n", type=COUNT, default=500, help="held-out digits to evaluate (default 500)")
    qs.add_argument("--gen-n", type=COUNT, default=200, help="digits generated (default 200)")
    qs.add_argument("--no-progress", action="store_true", help="no progress bars")
    _sample_steps_arg(qs, "Algorithm 2 (restoration and generation)")


# ---------------------------------------------------------------------------- share and show: export, demo
def cmd_export(args) -> int:
    from .export import export_run
    from .hub import check_push, push

    if args.push is not None:  # an empty --push "" is refused, not ignored
        check_push(args.push)  # the Hub client and the repository id, before anything is written
    run = _load_run(args)
    res = export_run(run, args.out, licence=args.license, repo_id=args.push, n_samples=args.n,
                     progress=not args.no_progress)
    if not res["samples"] and args.n:  # --n 0 asked for no grid
        print(f"colddiff: warning: no sample grid in the model card (the data set {run.cfg.data.name} is not "
              "available here)", file=sys.stderr)
    print(f"exported {run.name} (step {run.step}, {'EMA' if run.ema else 'raw'} weights) to {res['folder']}/: "
          f"{len(res['files'])} files, {res['bytes'] / 1e6:.1f} MB (model.safetensors, config.json, README.md"
          f"{', samples.png' if res['samples'] else ''})")
    if args.push:
        url = push(res["folder"], args.push, private=args.private)
        print(f"pushed to {url}; load it with hf://{args.push}")
    return 0


def add_export(sub):
    ex = _command(sub, "export", "write a shareable model folder (Hugging Face layout); --push uploads it",
                  "Write the run as a model folder in the Hugging Face Hub layout: model.safetensors (EMA weights\n"
                  "only, no optimizer state), config.json (full configuration, degradation, colddiff version),\n"
                  "config.toml, a model card README.md (licence, data set, tags, evaluation tables, sample grid,\n"
                  "the command that reproduces the run) and samples.png. Every command that takes RUN takes the\n"
                  "folder too; --push owner/name uploads it (needs huggingface_hub) and hf://owner/name loads it.",
                  """
        examples:
          colddiff export runs/quickstart --out exported/quickstart
          colddiff evaluate exported/quickstart --n 100          # the folder works wherever RUN does
          colddiff export runs/quickstart --out exported/quickstart --push you/colddiff-mnist-blur
          colddiff restore hf://you/colddiff-mnist-blur --input blurry.png --out restored/
        """, cmd_export)
    _run_args(ex)
    ex.add_argument("--out", "-o", required=True, help="folder to write (new, empty, or an earlier export)")
    ex.add_argument("--license", default=None,
                    help="licence identifier for the model card (default: the data set's, e.g. cc-by-sa-3.0 for "
                         "MNIST; 'other' when unknown)")
    ex.add_argument("--n", type=argtype("whole", 0, 256), default=8,
                    help="held-out images in the sample grid (default 8; 0 = no grid)")
    ex.add_argument("--push", metavar="OWNER/NAME", default=None,
                    help="upload the folder to this Hub model repository (needs huggingface_hub and a login)")
    ex.add_argument("--private", action="store_true", help="with --push: create the repository as private")


def cmd_demo(args) -> int:
    from .demo import serve

    from .samplers import parse_schedule

    schedule = parse_schedule(args.sample_steps)
    run = _load_run(args)
    serve(run, host=args.host, port=args.port, open_browser=args.open, tab=args.tab, schedule=schedule)
    return 0


def add_demo(sub):
    dm = _command(sub, "demo", "a local web page to degrade, restore and generate (pip install colddiff[demo])",
                  "Serve a local web page (Gradio) with three tabs: degrade (a test image or an upload, slide t,\n"
                  "see D(x0, t)); restore (an uploaded degraded image, t estimated or chosen, direct / Algorithm 1 /\n"
                  "Algorithm 2 side by side with Algorithm 2's trajectory); generate (seed, noise, sampler, a grid).\n"
                  "Needs the optional extra: pip install 'colddiff[demo]'. Stop it with Ctrl-C.", """
        examples:
          colddiff demo runs/quickstart                  # then open http://127.0.0.1:7860
          colddiff demo exported/quickstart --port 8000
          colddiff demo hf://you/colddiff-mnist-blur
        """, cmd_demo)
    _run_args(dm)
    dm.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 = the first free one from 7860)")
    dm.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for the network)")
    dm.add_argument("--open", action="store_true", help="open the page in the default browser")
    dm.add_argument("--tab", choices=("degrade", "restore", "generate"), default="degrade",
                    help="the tab the page opens on (default degrade)")
    _sample_steps_arg(dm, "the restore and generate tabs' samplers (editable on the page)")


def cmd_reproduce(args) -> int:
    from .reproduce import run_table

    out = Path(args.out) if args.out else Path("reproduce") / args.scale
    check_writable(out, folder=True)
    command = "colddiff reproduce " + " ".join(sys.argv[2:] if len(sys.argv) > 2 and sys.argv[1] == "reproduce"
                                                   else [args.table, "--scale", args.scale])
    rep = run_table(args.table, scale=args.scale, out=out, steps=args.steps, n=args.n, protocol=args.protocol,
                    fid=args.fid, train_only=args.train_only, progress=not args.no_progress, command=command,
                    batch_size=args.batch_size, net=args.net)
    if int(os.environ.get("RANK", 0)) != 0:
        return 0
    print(rep.text())
    print(f"\nwrote {out / (args.table + '.md')} and .json in {rep.seconds:.0f} s; run folders in {out}/")
    return 0


def add_reproduce(sub):
    from .reproduce import NETS, SCALES, TABLES  # no torch: the table definitions only

    rp = _command(sub, "reproduce", "train and evaluate every preset of one of the paper's tables, beside its numbers",
                  "Train (or resume) every preset of TABLE, evaluate each as the authors did (--protocol paper) and\n"
                  "print our numbers beside the paper's (with their ratio only on the paper's own data set); the\n"
                  "generation table measures FID of the generated images. --scale cpu runs the table in miniature\n"
                  "(embedded MNIST / Fashion-MNIST stand-ins, the authors' network of each experiment at a narrow\n"
                  "width, ~1.5 hours on 2 cores);\n"
                  "--scale paper runs the authors' settings (a GPU job; resumable; torchrun for several GPUs).\n"
                  "Writes OUT/TABLE.md and OUT/TABLE.json; run folders OUT/PRESET.", """
        examples:
          colddiff reproduce table1 --scale cpu --out reproduce/cpu      # deblurring, ~1.5 hours on 2 cores
          colddiff reproduce table2 --scale cpu --steps 200 --n 100      # a quick look
          torchrun --nproc_per_node 8 -m colddiff reproduce table1 --scale paper --out /data/repro
        """, cmd_reproduce)
    rp.add_argument("table", choices=tuple(TABLES), help="; ".join(t.describe() for t in TABLES.values()))
    rp.add_argument("--scale", choices=SCALES, default="cpu", help="cpu (miniature, default) or paper")
    rp.add_argument("--out", help="output folder (default reproduce/SCALE); run again to resume")
    rp.add_argument("--steps", type=TRAIN_STEPS, default=None, help="training steps per preset (default: the scale's)")
    rp.add_argument("--net", choices=NETS, default="authors",
                    help="cpu scale's network: authors (default: each preset's own architecture, the authors' "
                         "network of that experiment, at a narrow width) or colddiff (colddiff's U-Net)")
    rp.add_argument("--n", type=COUNT, default=None,
                    help="test images per preset (default: the protocol's; paper = the whole test split but one); "
                         "generation: images generated per preset (default 6,400 at paper scale, 500 at cpu)")
    rp.add_argument("--protocol", choices=("paper", "colddiff"), default="paper",
                    help="evaluation protocol (default paper: the authors' test scripts)")
    rp.add_argument("--fid", choices=FID_CHOICES, metavar="BACKEND", default="auto", help="FID features: auto, inception, classifier or none (as evaluate)")
    rp.add_argument("--batch-size", type=BATCH, default=100, help="images per sampler batch (default 100)")
    rp.add_argument("--train-only", action="store_true", help="train or resume, do not evaluate yet")
    rp.add_argument("--no-progress", action="store_true", help="no progress bars")


ADDERS = (add_degrade, add_degradations, add_check_degradation, add_networks, add_train, add_import_official,
          add_presets, add_data,
          add_weights,
          add_evaluate, add_restore, add_quickstart, add_generate, add_report, add_export, add_demo, add_reproduce)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="colddiff", description="Cold Diffusion: restoration and generation with arbitrary image "
                "degradations.", formatter_class=RAW,
                epilog="Run `colddiff COMMAND --help` for a command's options and an example.")
    p.add_argument("--version", action="version", version=f"colddiff {__version__}")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                   help="load degradations of your own first (a .py file or a module name; repeatable; "
                        "also $COLDDIFF_PLUGINS)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for torch (default: every core on a quiet machine, a fair share on a busy one)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in ADDERS:
        add(sub)
    return p


#: commands that compute with torch: their thread count is measured against the machine's load at start
COMPUTING = frozenset({"train", "quickstart", "evaluate", "generate", "restore", "reproduce", "demo", "degrade",
                       "check-degradation", "import-official", "report", "export"})


def _computes(argv: Sequence[str]) -> bool:
    """Whether ``argv`` runs a computing command (not --help/--version, not a listing)."""
    if any(a in ("-h", "--help", "--version") for a in argv):
        return False
    it = iter(argv)
    for a in it:   # the command: the first word that is not an option nor the value of one before it
        if a in _VALUED:
            next(it, None)
        elif not a.startswith("-"):
            return a in COMPUTING
    return False


_VALUED = ("--plugin", "--threads")   # the options before the command that take a value as the next word


def _argv_plugins(argv: Sequence[str]) -> list:
    """--plugin values given before the command (read before parsing, so choices can list plug-ins)."""
    out, it = [], iter(argv)
    for a in it:
        if a == "--plugin":
            out.append(next(it, ""))
        elif a.startswith("--plugin="):
            out.append(a.split("=", 1)[1])
    return out


def _interrupted(signum, frame):
    """Ctrl-C before a command has its own handler (while torch is imported, say): one line, status 130."""
    print("colddiff: interrupted", file=sys.stderr)
    raise SystemExit(130)


def _is_out_of_memory(e: BaseException) -> bool:
    text = str(e)
    return type(e).__name__ == "OutOfMemoryError" or (isinstance(e, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text))


def main(argv: Optional[Sequence[str]] = None) -> int:
    import signal

    try:  # first of all: a Ctrl-C in the first seconds (imports) must not print a traceback
        previous = signal.signal(signal.SIGINT, _interrupted)
    except ValueError:  # not the main thread (an embedding program): leave its handler alone
        previous = None
    # a program that imported torch before calling main() gets its own thread count back afterwards (the
    # command's --threads / busy-machine policy is the command's, not the program's)
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        if torch_threads is not None and torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)


def _main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        from . import threads  # before anything imports torch: OpenMP reads its wait policy once

        plan = threads.plan_before_torch(argv, window=threads.START_WINDOW if _computes(argv) else 0.0)
        from . import plugins

        plugins.load_installed()   # installed and COLDDIFF_PLUGINS ones: listed by `degradations`, usable everywhere
        plugins.load_plugins(_argv_plugins(argv))
    except ColddiffError as e:
        if debug:
            raise
        print(f"colddiff: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        if plan.fixed or plan.threads != threads.cores():
            threads.apply(plan)
        return int(args.func(args) or 0)
    except ColddiffError as e:
        if args.debug:
            raise
        print(f"colddiff: error: {e}", file=sys.stderr)
        return getattr(e, "exit_status", EXIT_USER_ERROR)  # StoppedError: 3, like a stopped `train`
    except KeyboardInterrupt:
        print("colddiff: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # the file system said no outside the atomic writer: still one line, exit 2
        if args.debug:
            raise
        if e.errno is not None and e.filename:
            from .fileio import os_problem

            print(f"colddiff: error: {os_problem(e, e.filename, 'use')}", file=sys.stderr)
            return EXIT_USER_ERROR
        print(f"colddiff: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback "
              "and please report it)", file=sys.stderr)
        return 1
    except MemoryError:
        print("colddiff: error: out of memory; use fewer or smaller images (--n, --size) or a smaller network "
              "(model.dim)", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as e:  # a bug: still one line, with the way to get the details
        if args.debug:
            raise
        if _is_out_of_memory(e):
            first = (str(e).strip().splitlines() or [""])[0]
            print(f"colddiff: error: out of memory ({first[:120]}); use fewer or smaller images (--n, --size, "
                  "--batch-size) or a smaller network (model.dim)", file=sys.stderr)
            return EXIT_USER_ERROR
        print(f"colddiff: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback "
              "and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
