"""Photo benchmark: a trained colour blur run (``folder-blur``) on held-out photographs.

    python -m benchmarks.photos --run RUN --photos FOLDER [--ts 3,5,8] [--crop 160] [--figure PNG]
                                [--sample-steps 1,2] [--auto-tolerance 1.25] [--skip-quality] [--skip-auto] [--out PATH] [--markdown]

Two tables, on photos the run never trained on (every image file of ``--photos``):

* QUALITY: each photo, at its own size, degraded by the run's own blur at each t of ``--ts``
  (``Run.degrade``: rounded to 8 bits, as a saved PNG), then restored at that t by direct
  reconstruction (R(x_t, t)) and by Algorithm 2 (``colddiff.restoration.restore``: whole or in
  tiles as ``colddiff restore`` does).  PSNR (dB) and SSIM against the sharp photo, and the colour
  error of each restoration per channel (R, G, B), in 8-bit levels: the signed mean over the photo
  (a cast of the whole image) and the mean absolute error of 16x16-pixel block means (a cast that
  changes from place to place, e.g. from tile to tile).  Target: Algorithm 2 beats the degraded
  input on every photo and t, in PSNR and in SSIM, as ``colddiff restore`` runs it by default (the run's
  ``restore.sample_steps``: folder-blur runs restore in one update).  ``--sample-steps`` adds Algorithm 2 on shorter
  schedules (``restore --sample-steps N``: N updates from t to 0; with N = 1 it is
  x0_hat + (y - D(x0_hat, t)), direct reconstruction plus what it fails to explain of the input).
* T AUTO: the middle ``--crop`` x ``--crop`` pixels of each photo blurred by other tools (PIL's
  GaussianBlur with several radii, PIL's BoxBlur, a uniform disc: a slight defocus) and by the
  run's own blur.  "best t" is the run's step whose blur best matches the image: argmin over t of
  the RMSE between D(sharp, t) and the blurred image.  "estimated" is ``estimate_t`` (what
  ``colddiff restore --t auto`` uses).  Target: within one step of the best t.  Beside it, the PSNR of
  direct reconstruction at the best t, at the estimated t and at the t that restores best (an oracle that
  knows the sharp image): the t whose blur matches is not always the t that restores best.

``--figure`` writes a before/after crop figure (sharp, degraded, direct, Algorithm 2) of each photo
at the middle t.  The numbers depend on the run (its data, its steps) and on the photos: say which.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from colddiff.degradations.ops import quantize8
from colddiff.images import list_images, make_grid, read_image, to_tensor, to_uint8
from colddiff.metrics import psnr, ssim
from colddiff.restoration import estimate_t, restore, tiling
from colddiff.runs import load_run
from colddiff.tables import markdown_table, text_table

from .common import finish

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "photos.json"
BLOCK = 16  # block size of the local colour error


# ---------------------------------------------------------------------------- blur from other tools
def _pil(x: torch.Tensor) -> Image.Image:
    return Image.fromarray(to_uint8(x))


def _tensor(im: Image.Image) -> torch.Tensor:
    return to_tensor(im, 3)


def defocus(x: torch.Tensor, radius: float) -> torch.Tensor:
    """A uniform disc of ``radius`` pixels (a slight defocus), reflect padding, rounded to 8 bits."""
    k = int(np.ceil(radius))
    yy, xx = np.mgrid[-k:k + 1, -k:k + 1]
    w = torch.from_numpy(((yy ** 2 + xx ** 2) <= radius ** 2 + 0.5).astype(np.float32))
    w = (w / w.sum())[None, None].repeat(x.shape[0], 1, 1, 1)
    y = F.conv2d(F.pad(x[None], (k, k, k, k), mode="reflect"), w, groups=x.shape[0])[0]
    return quantize8(y)


FOREIGN = {
    **{f"PIL GaussianBlur({r})": (lambda x, r=r: _tensor(_pil(x).filter(ImageFilter.GaussianBlur(r))))
       for r in (0.8, 1.2, 1.5, 2.0, 2.5)},
    **{f"PIL BoxBlur({r})": (lambda x, r=r: _tensor(_pil(x).filter(ImageFilter.BoxBlur(r)))) for r in (1, 2)},
    **{f"disc r={r}": (lambda x, r=r: defocus(x, r)) for r in (1.5, 2.5)},
}


def best_t(references: List[torch.Tensor], y: torch.Tensor) -> int:
    """The run's step whose blur best matches ``y``: argmin_t RMSE(D(x0, t), y), ``references`` = [D(x0, t)
    for t = 1..T] (:meth:`Run.degrade`, made once per photo)."""
    return 1 + int(np.argmin([float((ref - y).pow(2).mean()) for ref in references]))


# ---------------------------------------------------------------------------- colour error
def colour_error(x: torch.Tensor, ref: torch.Tensor) -> Dict[str, List[float]]:
    """Per channel, in 8-bit levels: the signed mean difference and the mean |difference| of block means."""
    d = (x - ref) * 127.5
    blocks = F.avg_pool2d(d[None], BLOCK, ceil_mode=True)[0]
    return {"mean": [round(float(v), 2) for v in d.mean((1, 2))],
            "local": [round(float(v), 2) for v in blocks.abs().mean((1, 2))]}


def _alg2(steps: str) -> str:
    return f"algorithm2@{steps}"


def default_key(run, schedules: Sequence[str]) -> str:
    """The quality row of what ``colddiff restore`` writes by default: Algorithm 2 on the run's
    ``restore.sample_steps`` (every step unless the run sets it; folder-blur: one update)."""
    default = run.cfg.restore.sample_steps
    if default in ("", "all"):
        return "algorithm2"
    if default not in schedules:
        raise SystemExit(f"this run restores with --sample-steps {default} by default: add it to --sample-steps")
    return _alg2(default)


def quality(run, photos: List[Path], ts: List[int], figure: Optional[Path],
            schedules: Sequence[str] = ()) -> List[Dict[str, Any]]:
    rows, cells = [], []
    for f in photos:
        x0 = read_image(f, channels=run.cfg.data.channels)
        H, W = x0.shape[-2:]
        for t in ts:
            t0 = time.perf_counter()
            y = run.degrade(x0[None], t)
            out = {s: restore(run, y, t, sampler=s, progress=False)[0] for s in ("direct", "algorithm2")}
            out.update({_alg2(n): restore(run, y, t, sampler="algorithm2", progress=False, schedule=n)[0]
                        for n in schedules})
            row = {"photo": f.name, "size": [W, H], "t": t, "tiling": tiling(run, H, W),
                   "seconds": round(time.perf_counter() - t0, 1)}
            for name, x in (("degraded", y[0]), *out.items()):
                row[name] = {"psnr": round(float(psnr(x[None], x0[None])[0]), 2),
                             "ssim": round(float(ssim(x[None], x0[None])[0]), 4)}
                if name != "degraded":
                    row[name]["colour"] = colour_error(x, x0)
            for k in ("algorithm2", *map(_alg2, schedules)):
                row[k]["beats_input"] = all(row[k][m] > row["degraded"][m] for m in ("psnr", "ssim"))
            # the target is on what `colddiff restore` writes by default: Algorithm 2 on the run's restore.sample_steps
            row["ok"] = row[default_key(run, schedules)]["beats_input"]
            rows.append(row)
            print(f"  {f.name} t={t}: degraded {row['degraded']['psnr']} dB, direct {row['direct']['psnr']} dB, "
                  f"Algorithm 2 {row['algorithm2']['psnr']} dB"
                  + "".join(f", {n} step(s) {row[_alg2(n)]['psnr']} dB" for n in schedules)
                  + f" ({row['seconds']} s)", flush=True)
            if figure is not None and t == ts[len(ts) // 2]:
                s = min(96, H, W)  # a crop from the middle, shown enlarged
                top, left = (H - s) // 2, (W - s) // 2
                cells.append([v[:, top:top + s, left:left + s] for v in
                              (x0, y[0], out["direct"], out["algorithm2"], *(out[_alg2(n)] for n in schedules))])
    if figure is not None and cells:
        mid = ts[len(ts) // 2]
        default = run.cfg.restore.sample_steps
        make_grid(cells, col_labels=["sharp", f"blurred t={mid}", "direct", "Algorithm 2, every step",
                                     *(f"Alg. 2, {n} step{'s' if n != '1' else ''}"
                                       + (" (default)" if n == default else "") for n in schedules)],
                  row_labels=[f.stem for f in photos], scale=3).save(figure)
        print(f"wrote {figure}")
    return rows


def t_auto(run, photos: List[Path], crop: int, tolerances: Sequence[float] = ()) -> List[Dict[str, Any]]:
    """The t-auto rows; ``tolerances``: also ``estimate_t(consistent=F)`` (``restore --auto-tolerance F``)."""
    rows = []
    for f in photos:
        x0 = read_image(f, channels=run.cfg.data.channels)
        H, W = x0.shape[-2:]
        s = min(crop, H, W)
        x0 = x0[:, (H - s) // 2:(H - s) // 2 + s, (W - s) // 2:(W - s) // 2 + s]
        references = [run.degrade(x0[None], t)[0] for t in range(1, run.T + 1)]   # D(x0, t), t = 1..T
        cases = {f"own blur t={t}": references[t - 1] for t in (2, 4, 6, 8) if t <= run.T}
        cases.update({name: fn(x0) for name, fn in FOREIGN.items()})
        for name, y in cases.items():
            b = best_t(references, y)
            e = int(estimate_t(run, y[None])[0])
            # direct reconstruction at every t: which t restores best, and what the best and estimated t give
            rec = [float(psnr(restore(run, y[None], t, sampler="direct", progress=False), x0[None])[0])
                   for t in range(1, run.T + 1)]
            o = 1 + max(range(run.T), key=rec.__getitem__)
            other = {str(tol): int(estimate_t(run, y[None], consistent=tol)[0]) for tol in tolerances}
            rows.append({"photo": f.name, "blur": name, "best_t": b, "estimated": e, "ok": abs(e - b) <= 1,
                         "restores_best": o, "direct_psnr": {"best_t": round(rec[b - 1], 2),
                                                             "estimated": round(rec[e - 1], 2),
                                                             "restores_best": round(rec[o - 1], 2)},
                         "estimated_with_tolerance": other})
            print(f"  {f.name} {name}: best t {b}, estimated {e}, restores best at {o}; direct PSNR "
                  f"{rec[b - 1]:.2f} / {rec[e - 1]:.2f} / {rec[o - 1]:.2f} dB", flush=True)
    return rows


# ---------------------------------------------------------------------------- tables
def format_table(result: Dict[str, Any], markdown: bool = False) -> str:
    render = markdown_table if markdown else text_table
    parts = []
    q = result.get("quality") or []
    if q:
        schedules = result.get("sample_steps") or []
        head = ["photo", "t", "degraded PSNR / SSIM", "direct PSNR / SSIM", "Algorithm 2 PSNR / SSIM",
                *(f"Alg. 2, {n} step{'s' if n != '1' else ''} PSNR / SSIM" for n in schedules),
                "colour error direct (R, G, B)", "colour error Alg. 2 (R, G, B)", "beats input"]
        body = [[r["photo"], r["t"], *(f"{r[k]['psnr']:.2f} / {r[k]['ssim']:.3f}" for k in
                                        ("degraded", "direct", "algorithm2", *map(_alg2, schedules))),
                 *("mean " + ", ".join(f"{v:+.1f}" for v in r[k]["colour"]["mean"]) + "; local "
                   + ", ".join(f"{v:.1f}" for v in r[k]["colour"]["local"]) for k in ("direct", "algorithm2")),
                 "yes" if r["ok"] else "NO"] for r in q]
        parts.append(render(head, body) + f"\n(beats input: Algorithm 2 as `colddiff restore` runs it by default, "
                     f"steps {result.get('default_sample_steps', 'all')})")
    a = result.get("t_auto") or []
    if a:
        tols = result.get("auto_tolerances") or []
        head = ["photo", "blur", "best t", "estimated", "within 1", *(f"estimated, tolerance {t}" for t in tols),
                "restores best at", "direct PSNR at best / estimated / restores-best t"]
        parts.append(render(head, [[r["photo"], r["blur"], r["best_t"], r["estimated"], "yes" if r["ok"] else "NO",
                                    *(r["estimated_with_tolerance"][str(t)] for t in tols),
                                    r.get("restores_best", "–"),
                                    " / ".join(f"{r['direct_psnr'][k]:.2f}" for k in
                                               ("best_t", "estimated", "restores_best"))
                                    if "direct_psnr" in r else "–"] for r in a]))
    return "\n\n".join(parts)


def run_cli(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.photos", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a trained colour blur run (e.g. folder-blur on your photos)")
    p.add_argument("--photos", required=True, help="a folder of held-out photos (not in the run's training data)")
    p.add_argument("--ts", default="3,5,8", help="steps of the quality table (default 3,5,8)")
    p.add_argument("--crop", type=int, default=160, help="side of the middle crop for the t-auto table (default 160)")
    p.add_argument("--figure", type=Path, default=None, help="write the before/after crop figure here (PNG)")
    p.add_argument("--sample-steps", default="",
                   help="also Algorithm 2 on these shorter schedules, comma-separated step counts (e.g. 1,2)")
    p.add_argument("--auto-tolerance", default="",
                   help="also estimate t with these --auto-tolerance values, comma-separated (e.g. 1.25)")
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--skip-auto", action="store_true")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    p.add_argument("--markdown", action="store_true", help="also print the tables in Markdown")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    run = load_run(args.run, device="cpu")
    photos = list_images(args.photos)
    ts = [int(s) for s in args.ts.split(",")]
    schedules = [s.strip() for s in args.sample_steps.split(",") if s.strip()]
    tolerances = [float(v) for v in args.auto_tolerance.split(",") if v.strip()]
    default = run.cfg.restore.sample_steps
    if default not in ("", "all") and default not in schedules:
        schedules.insert(0, default)               # the run's default schedule is always measured
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    result: Dict[str, Any] = {"run": str(args.run), "step": run.step, "degradation": repr(run.D),
                              "photos": [f.name for f in photos], "load_average": load,
                              "date": time.strftime("%Y-%m-%d %H:%M"), "sample_steps": schedules,
                              "default_sample_steps": default or "all", "auto_tolerances": tolerances}
    if not args.skip_quality:
        result["quality"] = quality(run, photos, ts, args.figure, schedules)
    if not args.skip_auto:
        result["t_auto"] = t_auto(run, photos, args.crop, tolerances)
    rows = (result.get("quality") or []) + (result.get("t_auto") or [])
    result["ok"] = all(r["ok"] for r in rows)
    result["target_missed"] = [f"{r['photo']} {r.get('blur', 't=' + str(r.get('t')))}" for r in rows if not r["ok"]]
    return finish(result, format_table, args.markdown, args.out)


def main(argv: Optional[List[str]] = None) -> int:
    return 0 if run_cli(argv)["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
