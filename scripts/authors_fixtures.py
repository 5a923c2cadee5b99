"""Golden fixtures from the authors' own code, for colddiff's tests of their networks (tests/test_official.py).

The authors' repository is arpitbansal297/Cold-Diffusion-Models; the fixtures were made from commit
f8b1379 (HEAD of October 2022).  For each architecture in ``ARCHS`` this script builds a narrow network
with the authors' class, then records, into ``tests/fixtures/authors/`` (a few hundred KB in all):

* ``<arch>.pt``: a checkpoint as their ``Trainer.save`` writes it, ``{'step', 'model', 'ema'}`` with the
  keys of ``DataParallel(GaussianDiffusion(net))`` (``module.denoise_fn.*`` and the blur kernels
  ``module.gaussian_kernels.*``), plain tensors only;
* ``<arch>.safetensors``: inputs x, their step index i (0..T-1) and the network's output; one training
  step of their loop from those weights (two micro-batches of ``GaussianDiffusion.p_losses``, i.e. their
  blur, their L1 loss divided by the accumulation, Adam lr 2e-5, ``zero_grad``), with the micro-batches,
  their steps, their blurred inputs, the losses and the weights after the step; and their EMA schedule
  (``Trainer.step_ema`` called as ``Trainer.train`` calls it: every 10 steps, a plain copy before step
  2000, then decay 0.995) over 2,100 steps of a scripted weight trajectory.

Rerun (nothing is installed into colddiff's environment)::

    git clone https://github.com/arpitbansal297/Cold-Diffusion-Models /tmp/authors
    git -C /tmp/authors checkout f8b1379
    python -m venv /tmp/authors-venv
    # torch as colddiff's own environment has it: here a .pth file naming that environment's site-packages
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/authors-venv/lib/python3.11/site-packages/zz.pth
    /tmp/authors-venv/bin/pip install einops     # the one import of their file this script does not stub
    PYTHONPATH=src /tmp/authors-venv/bin/python scripts/authors_fixtures.py /tmp/authors

(made on 2026-12-07 with torch 2.13.0+cpu and einops 0.8.2).  Every architecture's training step and EMA
run through the deblurring folder's ``GaussianDiffusion`` (its blur and L1 loss) and ``Trainer`` code.

``--compare N`` trains both for N steps from the same weights and batches (their loop and
colddiff's ``train_step``) and prints the loss curves' and final weights' largest difference;
``--time N`` times N full training steps of each (their blur and t draw included) at the paper's
width (``--width``, ``--image``, ``--batch``).  Their file imports comet_ml,
torchvision, torchgeometry and apex, none of which this check needs: missing ones are replaced by
stubs (``torchgeometry.image.get_gaussian_kernel2d`` by a normalised Gaussian, used only to make
their blur kernels; the fixtures record the blurred inputs, so nothing depends on its exactness).

To add an architecture: one function ``name(checkout) -> (authors_network, colddiff_model_config)``
and one line in ``ARCHS``.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.util
import json
import sys
import time
import types
from pathlib import Path

import torch
from torch import nn

COMMIT = "f8b1379"
BLUR_FILE = "deblurring-diffusion-pytorch/deblurring_diffusion_pytorch/deblurring_diffusion_pytorch.py"
DDPM_FILE = "deblurring-diffusion-pytorch/deblurring_diffusion_pytorch/Model2.py"
SNOW_NET_FILE = "snowification/diffusion/model/unet_convnext.py"
OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "authors"

# the fixture's setting: small enough to keep the files small, large enough to exercise every layer
B, C, SIZE, T = 4, 1, 16, 10          # micro-batch, channels, image size, steps of the blur
KERNEL, KSTD = 5, 1.0                 # their 'Constant' blur routine: one 5x5 Gaussian, std 1, circular
LR, ACCUM = 2e-5, 2                   # their Trainer's defaults
EMA_DECAY, EMA_START, EMA_EVERY, EMA_STEPS = 0.995, 2000, 10, 2100


# ---------------------------------------------------------------------------- loading the authors' file
def _stub_missing() -> None:
    """Stand-ins for the imports of their file that this check does not use (only where missing)."""
    def missing(name):
        try:
            importlib.import_module(name)
            return False
        except Exception:
            return True

    if missing("comet_ml"):
        m = types.ModuleType("comet_ml")
        m.Experiment = object
        sys.modules["comet_ml"] = m
    if missing("torchvision"):
        tv = types.ModuleType("torchvision")
        for sub in ("transforms", "utils", "datasets"):
            mod = types.ModuleType(f"torchvision.{sub}")
            setattr(tv, sub, mod)
            sys.modules[f"torchvision.{sub}"] = mod
        sys.modules["torchvision"] = tv
    if missing("torchgeometry"):
        def gaussian_kernel2d(ksize, sigma):
            def one(k, s):
                x = torch.arange(k, dtype=torch.float32) - k // 2
                g = torch.exp(-x ** 2 / (2 * float(s) ** 2))
                return g / g.sum()
            return one(ksize[0], sigma[0])[:, None] * one(ksize[1], sigma[1])[None, :]

        tgm = types.ModuleType("torchgeometry")
        tgm.image = types.SimpleNamespace(get_gaussian_kernel2d=gaussian_kernel2d)
        sys.modules["torchgeometry"] = tgm


def load_authors(checkout: Path, rel: str, name: str):
    """Their module at ``checkout/rel`` (loaded by path: the package __init__ pulls in more than needed)."""
    _stub_missing()
    path = checkout / rel
    if not path.is_file():
        sys.exit(f"{path} not found: give the folder of a checkout of the authors' commit {COMMIT}")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------------------- architectures
def lucidrains_convnext(checkout: Path):
    """Their deblurring folder's ConvNeXt ``Unet``, narrow: dim 4, multipliers 1-2 (28,700 parameters, most of
    them the linear attention, whose 4 heads x 32 do not narrow with dim)."""
    mod = load_authors(checkout, BLUR_FILE, "authors_blur")
    net = mod.Unet(dim=4, dim_mults=(1, 2), channels=C)
    return net, dict(arch="lucidrains-convnext", channels=C, dim=4, dim_mults=[1, 2])


def ddpm(checkout: Path):
    """Their DDPM ``Model`` (Model2.py, the class their CIFAR-10 scripts train), narrow: ch 8, multipliers 1-2, one
    residual block per level, attention at 8 px (level 1), no dropout (so that one training step is deterministic).
    Their ``Normalize`` hard-codes GroupNorm(32), which cannot split 8 channels: for this fixture only it is
    replaced by the same GroupNorm with 8 groups (eps 1e-6), what colddiff uses at this width (gcd(32, dim));
    tests/test_ddpm.py checks the 32 groups at the paper's width."""
    mod = load_authors(checkout, DDPM_FILE, "authors_ddpm")
    mod.Normalize = lambda channels: nn.GroupNorm(num_groups=8, num_channels=channels, eps=1e-6, affine=True)
    net = mod.Model(resolution=SIZE, in_channels=C, out_ch=C, ch=8, ch_mult=(1, 2), num_res_blocks=1,
                    attn_resolutions=(SIZE // 2,), dropout=0.0)
    return net, dict(arch="ddpm", channels=C, dim=8, dim_mults=[1, 2], attn_levels=[1], num_res_blocks=1,
                     dropout=0.0)


def convnext_snow(checkout: Path):
    """Their snowification folder's ``UnetConvNextBlock`` (what ``get_model`` returns for --model UnetConvNext;
    decolor-diffusion's copy is the same file), narrow: dim 4, multipliers 1-2."""
    mod = load_authors(checkout, SNOW_NET_FILE, "authors_snow_net")
    net = mod.UnetConvNextBlock(dim=4, dim_mults=(1, 2), channels=C, with_time_emb=True, residual=False)
    return net, dict(arch="convnext-snow", channels=C, dim=4, dim_mults=[1, 2])


ARCHS = {"lucidrains-convnext": lucidrains_convnext, "ddpm": ddpm, "convnext-snow": convnext_snow}


# ---------------------------------------------------------------------------- their training loop, one step
def authors_diffusion(checkout: Path, net: nn.Module) -> nn.Module:
    """``DataParallel(GaussianDiffusion(net))`` as their train scripts build it (on the CPU)."""
    mod = load_authors(checkout, BLUR_FILE, "authors_blur")
    diffusion = mod.GaussianDiffusion(net, image_size=SIZE, device_of_kernel="cpu", channels=C, timesteps=T,
                                      loss_type="l1", kernel_std=KSTD, kernel_size=KERNEL, blur_routine="Constant")
    return nn.DataParallel(diffusion, device_ids=[])


def authors_step(diffusion: nn.Module, opt, batches, steps):
    """One optimizer step of their ``Trainer.train``: for each micro-batch ``p_losses`` (their blur of x0 at
    index i, the network, L1), ``loss / accumulation`` backward; then ``opt.step()`` and ``opt.zero_grad()``.
    Returns the losses and their blurred inputs (recorded so that colddiff's step sees the same x_t)."""
    inner = diffusion.module
    losses, blurred = [], []
    for x0, i in zip(batches, steps):
        with torch.no_grad():
            blurred.append(inner.q_sample(x0, i))
        loss = torch.mean(inner.p_losses(x0, i))
        losses.append(loss.item())
        (loss / len(batches)).backward()
    opt.step()
    opt.zero_grad()
    return losses, blurred


def authors_ema_schedule(checkout: Path, trajectory: torch.Tensor) -> torch.Tensor:
    """Their ``Trainer.step_ema`` called as ``Trainer.train`` calls it, on a model whose weights after step s
    are ``trajectory[s]``; the EMA weights after every step."""
    mod = load_authors(checkout, BLUR_FILE, "authors_blur")
    model = nn.Linear(trajectory.shape[1], 1, bias=False)
    trainer = types.SimpleNamespace(model=model, ema_model=copy.deepcopy(model), ema=mod.EMA(EMA_DECAY),
                                    step_start_ema=EMA_START, update_ema_every=EMA_EVERY, step=0)
    trainer.reset_parameters = lambda: mod.Trainer.reset_parameters(trainer)
    out = []
    for s in range(len(trajectory)):
        with torch.no_grad():
            model.weight.copy_(trajectory[s][None])   # the weights after optimizer step s
        if trainer.step % trainer.update_ema_every == 0:
            mod.Trainer.step_ema(trainer)
        trainer.step += 1
        out.append(trainer.ema_model.weight.detach()[0].clone())
    return torch.stack(out)


def make(checkout: Path, arch: str, out: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net, model_config = ARCHS[arch](checkout)
    diffusion = authors_diffusion(checkout, net)
    # the network: x and their step index i (colddiff's t = i + 1)
    x = torch.randn(B, C, SIZE, SIZE)
    i = torch.randint(0, T, (B,))
    with torch.no_grad():
        y = net(x, i)
    # a checkpoint as Trainer.save writes it: {'step', 'model', 'ema'} of DataParallel(GaussianDiffusion); the
    # EMA holds the weights that gave y, the raw weights differ in one tensor (so a test can tell which one was
    # loaded) and share the others' storage (torch.save writes a shared tensor once: the file stays small)
    ema = diffusion.state_dict()
    raw = dict(ema)
    odd = [k for k in raw if "denoise_fn." in k and k.endswith(".weight")][-1]   # the output convolution
    raw[odd] = raw[odd] * 0.5
    ckpt = {"step": 1234, "model": raw, "ema": ema}
    out.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out / f"{arch}.pt")   # now: the training step below changes the weights in place
    # one training step (Adam over the whole GaussianDiffusion, as their Trainer builds it)
    opt = torch.optim.Adam(diffusion.parameters(), lr=LR)
    batches = [torch.rand(B, C, SIZE, SIZE) * 2 - 1 for _ in range(ACCUM)]
    steps = [torch.randint(0, T, (B,)) for _ in range(ACCUM)]
    losses, blurred = authors_step(diffusion, opt, batches, steps)
    after = {f"after.{k}": v.detach().clone() for k, v in net.state_dict().items()}
    # the EMA schedule on a scripted trajectory of two weights
    s = torch.arange(EMA_STEPS, dtype=torch.float32)
    trajectory = torch.stack([torch.sin(0.01 * s), torch.cos(0.003 * s)], dim=1)
    ema_out = authors_ema_schedule(checkout, trajectory)

    tensors = {"x": x, "i": i, "y": y, "ema_trajectory": trajectory, "ema_after": ema_out, **after}
    for k in range(ACCUM):
        tensors.update({f"batch{k}.x0": batches[k], f"batch{k}.i": steps[k], f"batch{k}.x_t": blurred[k]})
    meta = {"commit": COMMIT, "model_config": json.dumps(model_config), "losses": json.dumps(losses),
            "lr": str(LR), "accum": str(ACCUM), "T": str(T), "ema": json.dumps([EMA_DECAY, EMA_START, EMA_EVERY]),
            "checkpoint_sha256": hashlib.sha256((out / f"{arch}.pt").read_bytes()).hexdigest()}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / f"{arch}.safetensors"), metadata=meta)
    size = sum((out / f"{arch}{ext}").stat().st_size for ext in (".pt", ".safetensors"))
    print(f"{arch}: {size / 1024:.0f} KB in {out} (authors' commit {COMMIT}; losses {losses})")


# ---------------------------------------------------------------------------- both loops side by side
def _colddiff_parts(model_config, net_state, lr, accum, batch):
    """colddiff's network, EMA and Adam with the given weights, and a RunConfig of the authors' settings."""
    from colddiff import speed
    from colddiff.config import RunConfig
    from colddiff.networks import build

    cfg = RunConfig()
    cfg.data.channels = model_config["channels"]
    cfg.train.lr, cfg.train.grad_accum, cfg.train.batch_size = lr, accum, batch
    cfg.train.ema_decay, cfg.train.ema_start, cfg.train.ema_every = EMA_DECAY, EMA_START, EMA_EVERY
    model = build(model_config)
    model.load_state_dict(net_state)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = speed.make_adam(model.parameters(), lr, torch.device("cpu"), "off")
    return cfg, model, ema, opt


def compare(checkout: Path, arch: str, n: int, width: int | None, image: int, batch: int) -> dict:
    """``n`` steps of their loop and of colddiff's ``train_step`` from the same weights on the same batches (their
    blurred inputs fed to both): the loss curves' and the final weights' largest difference."""
    import contextlib

    from colddiff.objective import l1_loss
    from colddiff.training import StepParts, train_step

    torch.manual_seed(1)
    net, model_config = ARCHS[arch](checkout)
    if width:
        mod = load_authors(checkout, BLUR_FILE, "authors_blur")
        net = mod.Unet(dim=width, dim_mults=(1, 2, 4, 8), channels=C)
        model_config = dict(model_config, dim=width, dim_mults=[1, 2, 4, 8])
    global SIZE
    SIZE = image
    diffusion = authors_diffusion(checkout, net)
    cfg, model, ema, opt_c = _colddiff_parts(model_config, net.state_dict(), LR, ACCUM, batch)
    opt_a = torch.optim.Adam(diffusion.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(2)
    data = [[(torch.rand(batch, C, image, image, generator=gen) * 2 - 1, torch.randint(0, T, (batch,), generator=gen))
             for _ in range(ACCUM)] for _ in range(n)]
    la, lc, xts = [], [], []
    for batches in data:
        losses, blurred = authors_step(diffusion, opt_a, [b[0] for b in batches], [b[1] for b in batches])
        la.append(sum(losses) / ACCUM)
        xts.append(blurred)
    fed = iter([(x_t, b[1] + 1, b[0]) for blurred, batches in zip(xts, data) for x_t, b in zip(blurred, batches)])
    loss_c = l1_loss(model, contextlib.nullcontext())

    def same_inputs(x_t, t, x0):  # the authors' x_t and steps for the micro-batch train_step drew
        x_t, t, x0 = next(fed)
        return loss_c(x_t, t, x0)

    stream = types.SimpleNamespace(next=lambda: torch.zeros(batch, C, image, image))
    D = types.SimpleNamespace(T=T, context=lambda x0, g: None, observe=lambda x0, t, ctx, **kw: x0)
    parts = StepParts(model, ema, opt_c, same_inputs, stream, D, torch.Generator().manual_seed(0))
    for step in range(n):
        lc.append(float(train_step(cfg, step, parts)))
    diff = max(abs(a - c) for a, c in zip(la, lc))
    theirs, ours = net.state_dict(), model.state_dict()
    assert list(theirs) == list(ours), "the state dicts list other tensors or another order"
    wdiff = max((theirs[k] - ours[k]).abs().max().item() for k in ours)
    return dict(arch=arch, steps=n, dim=model_config["dim"], dim_mults=model_config["dim_mults"], image=image,
                batch=batch, accum=ACCUM, loss_max_abs_diff=diff, weights_max_abs_diff=wdiff,
                first_loss=la[0], last_loss=la[-1], torch=torch.__version__)


def time_steps(checkout: Path, n: int, width: int, image: int, batch: int) -> dict:
    """One training step each, as run: their ``Trainer.train`` body (``DataParallel(GaussianDiffusion)`` forward,
    i.e. their t draw, their blur, L1; backward of loss / 2 per micro-batch; Adam; zero_grad; step_ema) against
    colddiff's ``train_step`` (its t draw, its blur, Eq. 1, accumulation, Adam, EMA), mnist-blur's degradation
    (T=20, 11x11, sigma 7, circular) and the authors' Unet at dim ``width``, 1-2-4-8, from the same weights;
    the median over ``n`` steps after one warm-up step."""
    import contextlib

    from colddiff.objective import l1_loss
    from colddiff.presets import preset
    from colddiff.training import StepParts, train_step

    mod = load_authors(checkout, BLUR_FILE, "authors_blur")
    torch.manual_seed(3)
    net = mod.Unet(dim=width, dim_mults=(1, 2, 4, 8), channels=1)
    diffusion = nn.DataParallel(mod.GaussianDiffusion(net, image_size=image, device_of_kernel="cpu", channels=1,
                                                      timesteps=20, loss_type="l1", kernel_std=7.0, kernel_size=11,
                                                      blur_routine="Constant"), device_ids=[])
    cfg = preset("mnist-blur")
    cfg.model.dim, cfg.data.image_size, cfg.train.batch_size = width, image, batch
    model_config = cfg.model_kwargs()
    _, model, ema, opt_c = _colddiff_parts(model_config, net.state_dict(), LR, ACCUM, batch)
    trainer = types.SimpleNamespace(model=diffusion, ema_model=copy.deepcopy(diffusion), ema=mod.EMA(EMA_DECAY),
                                    step_start_ema=EMA_START, update_ema_every=EMA_EVERY, step=0)
    trainer.reset_parameters = lambda: mod.Trainer.reset_parameters(trainer)
    opt_a = torch.optim.Adam(diffusion.parameters(), lr=LR)
    x0 = torch.rand(batch, 1, image, image) * 2 - 1
    ta, tc = [], []
    for _ in range(n + 1):
        t0 = time.perf_counter()
        for _ in range(ACCUM):
            loss = torch.mean(diffusion(x0))
            (loss / ACCUM).backward()
        opt_a.step()
        opt_a.zero_grad()
        if trainer.step % trainer.update_ema_every == 0:
            mod.Trainer.step_ema(trainer)
        trainer.step += 1
        ta.append(time.perf_counter() - t0)
    parts = StepParts(model, ema, opt_c, l1_loss(model, contextlib.nullcontext()),
                      types.SimpleNamespace(next=lambda: x0), cfg.build_degradation(),
                      torch.Generator().manual_seed(0))
    for step in range(n + 1):
        t0 = time.perf_counter()
        float(train_step(cfg, step, parts))
        tc.append(time.perf_counter() - t0)
    med = lambda v: sorted(v[1:])[len(v[1:]) // 2]  # noqa: E731
    return dict(what="one training step, mnist-blur's degradation, the authors' Unet", dim=width,
                dim_mults=[1, 2, 4, 8], image=image, batch=batch, accum=ACCUM, steps_timed=n,
                authors_s_per_step=med(ta), colddiff_s_per_step=med(tc), ratio_colddiff_over_authors=med(tc) / med(ta),
                authors_all=ta, colddiff_all=tc, torch=torch.__version__, threads=torch.get_num_threads())


def main(argv=None) -> int:
    # One thread: the fixtures were written so, and a training step's float sums (and Adam's first step, which
    # moves a weight by about +-lr whatever its gradient's size) depend on the reduction order of the threads.
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkout", type=Path, help=f"a checkout of the authors' repository at {COMMIT}")
    ap.add_argument("--arch", choices=list(ARCHS), action="append", help="default: all")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--compare", type=int, default=0, metavar="N", help="train both N steps and compare")
    ap.add_argument("--width", type=int, default=0, help="--compare at dim WIDTH, 1-2-4-8 (default: the fixture's)")
    ap.add_argument("--image", type=int, default=SIZE)
    ap.add_argument("--batch", type=int, default=B)
    ap.add_argument("--time", type=int, default=0, metavar="N",
                    help="time N training steps of each at --width (default 64), mnist-blur's degradation")
    ap.add_argument("--json", type=Path, help="write --compare's or --time's results here")
    args = ap.parse_args(argv)
    if args.time:
        r = time_steps(args.checkout, args.time, args.width or 64, args.image, args.batch)
        print(json.dumps(r, indent=1))
        if args.json:
            args.json.write_text(json.dumps(r, indent=1) + "\n")
        return 0
    for arch in args.arch or list(ARCHS):
        if args.compare:
            r = compare(args.checkout, arch, args.compare, args.width or None, args.image, args.batch)
            print(json.dumps(r, indent=1))
            if args.json:
                args.json.write_text(json.dumps(r, indent=1) + "\n")
        else:
            make(args.checkout, arch, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
