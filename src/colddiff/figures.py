"""The figures of a run, drawn once and used by the report, the CLI and the demo.

  * a degradation strip: D(x0, t) at chosen t, one row per image (``colddiff degrade``, ``degradation.png``);
  * a restoration grid: clean | degraded | one column per sampler (``restoration.png``, the model card);
  * Algorithm 2's trajectory: x_s and its x0_hat = R(x_s, s) at chosen s (``algorithm2.png``, the demo);
  * the training loss from metrics.jsonl (``loss.png``).

``write_figures(run)`` writes them all into RUN/figures/.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from PIL import Image

from .evaluation import held_out, method_label, restore_batches
from .fileio import atomic_path
from .images import atomic_save, make_grid
from .runs import Run
from .samplers import parse_schedule
from .validate import check_seed


def even_steps(T: int, k: int) -> List[int]:
    """k steps from 0 to T, evenly spaced (always including 0 and T)."""
    k = max(2, min(k, T + 1))
    return sorted({round(i * T / (k - 1)) for i in range(k)})


def degradation_strip(D, x0: torch.Tensor, steps: Sequence[int], ctx: Any = None) -> Image.Image:
    """One row per image: the degraded image D.observe(x0, t, ctx) at each of ``steps``, columns labelled t=..."""
    with torch.no_grad():
        cols = [D.observe(x0, s, ctx) for s in steps]
    rows = [[c[i] for c in cols] for i in range(x0.shape[0])]
    return make_grid(rows, col_labels=[f"t={s}" for s in steps])


def degradation_figure(run: Run, path, n: int = 6, k: int = 8, seed: int = 0) -> Path:
    """Trajectory strip: one row per test image, D(x0, t) at k evenly spaced t."""
    x0, _, _ = held_out(run, n)
    ctx = run.D.context(x0, torch.Generator().manual_seed(check_seed(seed)))
    return atomic_save(degradation_strip(run.D, x0, even_steps(run.T, k), ctx), path)


def restoration_figure(x0: torch.Tensor, restored: Dict[str, torch.Tensor], t: int, path, n: int = 8) -> Path:
    """clean | degraded (t) | one column per sampler (direct, Algorithm 1, Algorithm 2, ...), one row per image."""
    order = [("clean", x0), (f"t={t}", restored["degraded"])]
    order += [(method_label(m).replace("Algorithm ", "Alg. "), y) for m, y in restored.items() if m != "degraded"]
    n = min(n, x0.shape[0])
    rows = [[img[i] for _, img in order] for i in range(n)]
    return atomic_save(make_grid(rows, col_labels=[name for name, _ in order]), path)


def algorithm2_trajectory(run: Run, x_t: torch.Tensor, t: int, ctx: Any = None, k: int = 6, schedule=None
                          ) -> Tuple[torch.Tensor, List[int], Dict[int, torch.Tensor], Dict[int, torch.Tensor]]:
    """Algorithm 2 from ``t`` for the images ``x_t``, recording x_s and x0_hat at k evenly spaced s > 0
    (at k of the visited steps when a ``schedule`` skips steps).

    Returns (final x0_hat, the recorded steps from high to low, {s: x_s}, {s: x0_hat}).
    """
    sched = parse_schedule(schedule)
    visited = sched.for_t(t, run.T)[:-1]
    m = min(k, len(visited))          # k of the visited steps, evenly spaced over them (all of them when k >= len)
    shown = set(even_steps(t, k)) - {0} if sched.full else \
        {visited[round(i * (len(visited) - 1) / max(m - 1, 1))] for i in range(m)}
    xs: Dict[int, torch.Tensor] = {}
    x0s: Dict[int, torch.Tensor] = {}

    def record(s, x_s, x0_hat):
        if s in shown:
            xs[s], x0s[s] = x_s.float().cpu(), x0_hat.float().cpu()

    final = run.sample(x_t, t, ctx, sampler="algorithm2", batch_size=max(1, int(x_t.shape[0])), callback=record,
                       schedule=sched)
    return final, sorted(xs, reverse=True), xs, x0s


def trajectory_grid(final: torch.Tensor, steps: Sequence[int], xs: Dict[int, torch.Tensor],
                    x0s: Dict[int, torch.Tensor], last: Optional[torch.Tensor] = None,
                    last_label: str = "result") -> Image.Image:
    """Two rows per image (x_s, x0_hat) at ``steps``; the last column is the result (and ``last`` under it)."""
    last = final if last is None else last
    rows, labels = [], []
    for i in range(final.shape[0]):
        rows.append([xs[s][i] for s in steps] + [final[i]])
        rows.append([x0s[s][i] for s in steps] + [last[i]])
        labels += ["x_s", "x0_hat"]
    return make_grid(rows, col_labels=[f"s={s}" for s in steps] + [last_label], row_labels=labels)


def algorithm2_figure(run: Run, path, n: int = 3, k: int = 6, seed: int = 0, t: Optional[int] = None) -> Path:
    """Algorithm 2 from t (default T): for each image a row of x_s and a row of x0_hat = R(x_s, s) at k steps."""
    x0, _, _ = held_out(run, n)
    ctx = run.D.context(x0, torch.Generator().manual_seed(check_seed(seed)))
    t = t or run.D.T
    final, steps, xs, x0s = algorithm2_trajectory(run, run.degrade(x0, t, ctx), t, ctx, k)
    return atomic_save(trajectory_grid(final, steps, xs, x0s, last=x0, last_label="x_0 / clean"), path)


def read_metrics_log(path) -> List[dict]:
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash; the rest of the log is still good
        if isinstance(rec, dict) and all(isinstance(rec.get(k, 0), (int, float)) and not isinstance(rec.get(k), bool)
                                         for k in ("step", "loss")):
            out.append(rec)  # JSON that is no log record (a list, a number, a text loss) is left out
    return out


def loss_figure(metrics_log: Sequence[dict], path, title: str = "") -> Optional[Path]:
    """Training loss (L1, Eq. 1) against step; None when the log has no loss."""
    pts = [(r["step"], r["loss"]) for r in metrics_log if "loss" in r and "step" in r]
    if not pts:
        return None
    import matplotlib  # heavy: only when a loss figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, loss = zip(*pts)
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    ax.plot(steps, loss, lw=1.4, color="#1f5fa8")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("L1 loss (log scale)")
    ax.set_title(title or "training loss")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


FIGURES = ("degradation", "restoration", "algorithm2", "loss")   # RUN/figures/NAME.png


def figure_paths(run_folder) -> List[Path]:
    """The files :func:`write_figures` writes."""
    return [Path(run_folder) / "figures" / f"{name}.png" for name in FIGURES]


def write_figures(run: Run, n: int = 8, seed: int = 0, progress: bool = True, t: Optional[int] = None) -> Dict[str, Path]:
    """All figures of the run into RUN/figures/; the restoration and Algorithm 2 figures start at ``t`` (default T).

    A file of those names that colddiff did not write is refused before any work
    (:func:`colddiff.outputs.owned_files`)."""
    from .outputs import owned_files

    path = dict(zip(FIGURES, figure_paths(run.folder)))
    t = t or run.T
    figs: Dict[str, Path] = {}
    with owned_files(list(path.values()), "report", what="report:"):
        figs["degradation"] = degradation_figure(run, path["degradation"], seed=seed)
        x0, _, _ = held_out(run, n)
        restored = restore_batches(run, x0, t, seed=seed, progress=progress)
        figs["restoration"] = restoration_figure(x0, restored, t, path["restoration"], n=n)
        figs["algorithm2"] = algorithm2_figure(run, path["algorithm2"], seed=seed, t=t)
        loss = loss_figure(read_metrics_log(run.folder / "metrics.jsonl"), path["loss"],
                           title=f"training loss, {run.name}")
    if loss is not None:
        figs["loss"] = loss
    return figs
