"""Photo benchmark: a trained colour blur run (``folder-blur``) on held-out photographs.

    python -m benchmarks.photos --run RUN --photos FOLDER [--ts 3,5,8] [--crop 160] [--figure PNG]
                                [--sample-steps 1,2] [--auto-tolerance 1.25] [--own-ts 2,4,6,8] [--edge-estimates]
                                [--skip-quality] [--skip-auto] [--out PATH] [--markdown]

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
  ``--edge-estimates`` adds two estimates that read the blur off the image's edges instead of the
  network (:class:`EdgeEstimates`), and a summary of every estimate: within one step, overshoot by two
  or more, mean direct PSNR.

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


# ---------------------------------------------------------------------------- edge-width estimates (--edge-estimates)
# Two single-image blur estimates that do not use the network, measured beside estimate_t to show what a
# content-free estimate of "the run's t whose blur matches" achieves; colddiff does not ship them.  Both
# measure the edge width of the image by the gradient ratio of Zhuo & Sim (Pattern Recognition 2011):
# re-blurred by a Gaussian of s0 pixels, a step edge blurred by sigma keeps |grad| / |grad re-blurred| =
# sqrt(sigma^2 + s0^2) / sigma at its centre, so sigma = s0 / sqrt(R^2 - 1) there, whatever the edge's
# contrast; the median over the strongest 10% of edge pixels (local maxima of |grad| across the edge).
def _reblur(g: torch.Tensor, s0: float) -> torch.Tensor:
    from colddiff.degradations.blur import gaussian_kernel_1d
    k = int(np.ceil(4 * s0))
    w = torch.from_numpy(gaussian_kernel_1d(2 * k + 1, s0))
    g = F.conv2d(F.pad(g, (k, k, 0, 0), mode="replicate"), w.view(1, 1, 1, -1))
    return F.conv2d(F.pad(g, (0, 0, k, k), mode="replicate"), w.view(1, 1, -1, 1))


def _gradient(g: torch.Tensor):
    return (F.pad(g[..., :, 2:] - g[..., :, :-2], (1, 1, 0, 0)) / 2,
            F.pad(g[..., 2:, :] - g[..., :-2, :], (0, 0, 1, 1)) / 2)


def edge_width(y: torch.Tensor, s0: float = 1.0, top: float = 0.1, border: int = 6) -> float:
    """Edge blur sigma (pixels) of one image (C, H, W): the gradient ratio at its strongest edge pixels."""
    g = y.double().mean(0)[None, None]
    gx, gy = _gradient(g)
    m = (gx ** 2 + gy ** 2).sqrt()
    m1 = torch.stack(_gradient(_reblur(g, s0))).pow(2).sum(0).sqrt()
    mp = F.pad(m, (1, 1, 1, 1), mode="replicate")
    across_x = (m >= mp[..., 1:-1, :-2]) & (m >= mp[..., 1:-1, 2:])      # a maximum across a vertical edge
    across_y = (m >= mp[..., :-2, 1:-1]) & (m >= mp[..., 2:, 1:-1])
    edge = torch.where(gx.abs() >= gy.abs(), across_x, across_y) & (m > 0)
    edge[..., :border, :] = edge[..., -border:, :] = False
    edge[..., :, :border] = edge[..., :, -border:] = False
    if not bool(edge.any()):
        return float("nan")
    edge &= m >= torch.quantile(m[edge], 1 - top)
    ratio = (m[edge] / m1[edge].clamp_min(1e-12)).clamp_min(1 + 1e-6)
    return float((s0 / (ratio ** 2 - 1).sqrt()).median())


def edge_chart(n: int = 160) -> torch.Tensor:
    """A synthetic chart of isolated step edges (a disc and three rectangles), grey, 3 channels."""
    yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    img = torch.full((n, n), -0.6)
    img[(yy - n // 3) ** 2 + (xx - 2 * n // 3) ** 2 < (n // 5) ** 2] = 0.6
    img[3 * n // 5:9 * n // 10, n // 10:n // 2] = 0.2
    img[n // 10:2 * n // 5, n // 12:n // 3] = 0.9
    img[2 * n // 3:9 * n // 10, 3 * n // 5:9 * n // 10] = -0.1
    return img.expand(3, n, n).clone()


class EdgeEstimates:
    """``chart``: the run's t whose blur gives the synthetic chart (:func:`edge_chart`) the nearest edge width
    (in sigma^2).  ``self``: calibrated on the image itself, re-blurred by the run's own D by 1..3 steps:
    sigma^2 grows by k per step for this content, so t = (sigma^2(y) - a) / k, a = 0.4 px^2 (sharp photos'
    typical edge width), rounded into 1..T."""

    A, STEPS, S0_SELF = 0.4, 3, 2.0

    def __init__(self, run):
        self.run = run
        chart = edge_chart()
        self.chart = np.array([edge_width(run.degrade(chart[None], t)[0]) ** 2 for t in range(1, run.T + 1)])

    def __call__(self, y: torch.Tensor) -> Dict[str, int]:
        T = self.run.T
        w = edge_width(y) ** 2
        chart = 1 + int(np.nanargmin(np.abs(self.chart - w))) if np.isfinite(w) else 1
        v = [edge_width(y if s == 0 else self.run.degrade(y[None], s)[0], self.S0_SELF) ** 2
             for s in range(self.STEPS + 1)]
        k = float(np.polyfit(np.arange(self.STEPS + 1), v, 1)[0]) if np.isfinite(v).all() else 0.0
        own = int(np.clip(round((v[0] - self.A) / k), 1, T)) if k > 1e-3 else T
        return {"edge width, chart": chart, "edge width, self-calibrated": own}


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


def t_auto(run, photos: List[Path], crop: int, tolerances: Sequence[float] = (), own_ts: Sequence[int] = (2, 4, 6, 8),
           edges: bool = False) -> List[Dict[str, Any]]:
    """The t-auto rows; ``tolerances``: also ``estimate_t(consistent=F)`` (``restore --auto-tolerance F``);
    ``edges``: also the edge-width estimates (:class:`EdgeEstimates`)."""
    rows = []
    edge = EdgeEstimates(run) if edges else None
    for f in photos:
        x0 = read_image(f, channels=run.cfg.data.channels)
        H, W = x0.shape[-2:]
        s = min(crop, H, W)
        x0 = x0[:, (H - s) // 2:(H - s) // 2 + s, (W - s) // 2:(W - s) // 2 + s]
        references = [run.degrade(x0[None], t)[0] for t in range(1, run.T + 1)]   # D(x0, t), t = 1..T
        cases = {f"own blur t={t}": references[t - 1] for t in own_ts if t <= run.T}
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
            if edge is not None:
                rows[-1]["edge_estimates"] = {k: {"t": v, "direct_psnr": round(rec[v - 1], 2)}
                                              for k, v in edge(y).items()}
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
        edges = list(a[0].get("edge_estimates") or {})
        head = ["photo", "blur", "best t", "estimated", "within 1", *(f"estimated, tolerance {t}" for t in tols),
                *edges, "restores best at", "direct PSNR at best / estimated / restores-best t"]
        parts.append(render(head, [[r["photo"], r["blur"], r["best_t"], r["estimated"], "yes" if r["ok"] else "NO",
                                    *(r["estimated_with_tolerance"][str(t)] for t in tols),
                                    *(r["edge_estimates"][k]["t"] for k in edges),
                                    r.get("restores_best", "–"),
                                    " / ".join(f"{r['direct_psnr'][k]:.2f}" for k in
                                               ("best_t", "estimated", "restores_best"))
                                    if "direct_psnr" in r else "–"] for r in a]))
        if edges and "direct_psnr" in a[0]:
            parts.append(render(["estimate", "within 1 step of best t", "over by 2+", "mean direct PSNR (dB)"],
                                estimator_summary(a)))
    return "\n\n".join(parts)


def estimator_summary(rows: List[Dict[str, Any]]) -> List[List[Any]]:
    """Per estimate of t (estimate_t and the edge-width ones): how often it lands within one step of the best t,
    how often it overshoots by two or more (the costly side), and the mean direct PSNR it restores to; with the
    best t itself and the oracle t (restores best) for comparison."""
    picks = {"estimate_t (restore --t auto)": [(r["estimated"], r["direct_psnr"]["estimated"]) for r in rows]}
    for k in rows[0].get("edge_estimates") or {}:
        picks[k] = [(r["edge_estimates"][k]["t"], r["edge_estimates"][k]["direct_psnr"]) for r in rows]
    picks["best t (the target)"] = [(r["best_t"], r["direct_psnr"]["best_t"]) for r in rows]
    picks["restores best (oracle)"] = [(r["restores_best"], r["direct_psnr"]["restores_best"]) for r in rows]
    n = len(rows)
    return [[name, f"{sum(abs(t - r['best_t']) <= 1 for (t, _), r in zip(v, rows))}/{n}",
             f"{sum(t - r['best_t'] >= 2 for (t, _), r in zip(v, rows))}/{n}",
             f"{np.mean([p for _, p in v]):.2f}"] for name, v in picks.items()]


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
    p.add_argument("--own-ts", default="2,4,6,8", help="steps of the run's own blur in the t-auto table (default 2,4,6,8)")
    p.add_argument("--edge-estimates", action="store_true",
                   help="also two edge-width estimates of t that do not use the network (gradient ratio, "
                        "Zhuo & Sim 2011; not shipped), with a summary per estimate")
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
        result["t_auto"] = t_auto(run, photos, args.crop, tolerances,
                                  [int(v) for v in args.own_ts.split(",") if v.strip()], args.edge_estimates)
    rows = (result.get("quality") or []) + (result.get("t_auto") or [])
    result["ok"] = all(r["ok"] for r in rows)
    result["target_missed"] = [f"{r['photo']} {r.get('blur', 't=' + str(r.get('t')))}" for r in rows if not r["ok"]]
    return finish(result, format_table, args.markdown, args.out)


def main(argv: Optional[List[str]] = None) -> int:
    return 0 if run_cli(argv)["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
