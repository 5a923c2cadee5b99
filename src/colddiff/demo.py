"""``colddiff demo``: a local web page (Gradio) to degrade, restore and generate with a trained run.

Three tabs, each a thin layer over the library (nothing here computes anything itself):

  * **degrade**  – a held-out test image or an upload, a slider for t: x0 and D(x0, t);
  * **restore**  – an uploaded degraded image, t estimated (``estimate_t``) or chosen: direct
    reconstruction R(y, t), Algorithm 1 and Algorithm 2 side by side, and Algorithm 2's
    trajectory (x_s and x0_hat = R(x_s, s) at a few steps: the paper's Fig. 2 story);
  * **generate** – seed, start noise, sampler, number of images: a grid (``generate``).

Every handler returns a message for the page instead of raising: a bad upload (not an image,
another channel count, too large) or a setting the run cannot do is a line on the page.
Gradio is an optional extra (``pip install 'colddiff[demo]'``); without it the command says so.
Each handler is also an HTTP API endpoint (``/degrade``, ``/restore``, ``/generate``), which the
tests drive with gradio_client.
"""
from __future__ import annotations

import inspect
import logging
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, List, Optional, Tuple

import torch
from PIL import Image

from . import extras
from .errors import ColddiffError, ConfigError, InputError
from .evaluation import held_out
from .figures import algorithm2_trajectory, trajectory_grid
from .generation import generate
from .images import make_grid, save_image, to_uint8
from .restoration import check_restorable, default_schedule, estimate_t, load_user_images, restore
from .samplers import parse_schedule, sampler_names
from .timesteps import library_t, user_t
from .validate import check_seed

log = logging.getLogger("colddiff.demo")

MAX_UPLOAD_BYTES = 10 * 1024 * 1024     # larger uploads are refused with a message (and by Gradio itself)
MAX_UPLOAD_PIXELS = 4096 * 4096         # decoded size limit, checked from the header before decoding
N_TEST_IMAGES = 50                      # held-out images offered in the degrade tab
DEMO_INSTALL = "pip install 'colddiff[demo]'  (or: pip install gradio)"
# Pixel art stays pixel art: small images are shown enlarged without smoothing.
CSS = (".pixelated img {image-rendering: pixelated; width: 100% !important; height: 100% !important; "
       "object-fit: contain;} footer {display: none !important;}")


def _gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")   # no calls home from a local demo
    return extras.require("gradio", package="gradio", needed_for="colddiff demo", install=DEMO_INSTALL,
                          attrs=("Blocks",))


class _Notes(logging.Handler):
    """Collects the library's warnings (e.g. an out-of-distribution start) for the page's message line."""

    def __init__(self, notes: List[str]):
        super().__init__(logging.WARNING)
        self.notes = notes

    def emit(self, record):
        self.notes.append(record.getMessage())


@contextmanager
def _warnings_to(notes: List[str]):
    h, lg = _Notes(notes), logging.getLogger("colddiff")
    lg.addHandler(h)
    try:
        yield
    finally:
        lg.removeHandler(h)


def pil(x: torch.Tensor) -> Image.Image:
    """(C, H, W) in [-1, 1] -> a PIL image at the run's own size."""
    return Image.fromarray(to_uint8(x))


# ---------------------------------------------------------------------------- the work behind the tabs
class DemoApp:
    """The three tabs' handlers for one loaded run; each returns (outputs..., message)."""

    def __init__(self, run, seed: int = 0, schedule=None):
        # schedule: the default sampling steps (--sample-steps; every step when not given), except that the
        # restore tab follows the run's [restore] sample_steps when none is given, as `colddiff restore` does
        self.run, self.seed, self.schedule = run, check_seed(seed), parse_schedule(schedule)
        self.restore_schedule = default_schedule(run, schedule)
        self._test: Optional[torch.Tensor] = None

    # ------------------------------------------------------------------ inputs
    def test_images(self) -> torch.Tensor:
        """The first held-out images (empty when the run's data set is not available here)."""
        if self._test is None:
            try:
                self._test = held_out(self.run, N_TEST_IMAGES)[0]
            except ColddiffError as e:
                log.warning("no test images for the demo: %s", e)
                c = self.run.cfg.data
                self._test = torch.empty(0, c.channels, c.image_size, c.image_size)
        return self._test

    def example_upload(self) -> Optional[str]:
        """A PNG of the first held-out image degraded to T/2 (the restore tab's example), or None without data."""
        import tempfile

        test = self.test_images()
        if test.shape[0] == 0:
            return None
        t = max(1, self.run.T // 2)
        x_t = self.run.degrade(test[:1], t, self.run.D.context(test[:1], torch.Generator().manual_seed(self.seed)))
        folder = Path(tempfile.mkdtemp(prefix="colddiff-demo-"))
        return str(save_image(x_t[0], folder / f"example-t{t}.png"))

    def read_upload(self, path) -> Tuple[torch.Tensor, List[str]]:
        """An uploaded file as a (1, C, H, W) image at the run's size and channels, and notes on what changed."""
        if not path:
            raise InputError("upload an image first")
        path = Path(getattr(path, "name", path))
        size = path.stat().st_size if path.exists() else 0
        if size > MAX_UPLOAD_BYTES:
            raise InputError(f"{path.name} is {size / 1e6:.1f} MB; upload an image under "
                             f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
        try:
            with Image.open(path) as im:  # the header only: refuse giant images before decoding them
                w, h = im.size
        except Exception:
            raise InputError(f"{path.name} is not an image PIL can read; upload a PNG, JPEG, BMP or WebP "
                             "file") from None
        if w * h > MAX_UPLOAD_PIXELS:
            raise InputError(f"{path.name} is {w}×{h} pixels; upload an image of at most "
                             f"{int(math.sqrt(MAX_UPLOAD_PIXELS))}×{int(math.sqrt(MAX_UPLOAD_PIXELS))}")
        c = self.run.cfg.data
        user = load_user_images(path, c.image_size, c.channels, resize=True)
        notes = [n.replace(f" ({path.name})", "") for n in user.warnings(c.image_size, c.channels)]
        return user.images[0][None], notes

    # ------------------------------------------------------------------ tabs
    def degrade(self, index, t, upload=None):
        """(x0, D(x0, t), message) for test image ``index`` or an upload."""
        try:
            run = self.run
            t = library_t(t, run.T, f"this run's {run.D.name}")
            notes: List[str] = []
            if upload:
                x0, notes = self.read_upload(upload)
                what = "your image"
            else:
                test = self.test_images()
                if test.shape[0] == 0:
                    raise InputError(f"the data set {run.cfg.data.name} is not available here; upload an image")
                i = int(index)
                if not 0 <= i < test.shape[0]:
                    raise ConfigError(f"test image number must be 0..{test.shape[0] - 1}, got {i}")
                x0, what = test[i:i + 1], f"test image {i}"
            ctx = run.D.context(x0, torch.Generator().manual_seed(self.seed))
            x_t = run.degrade(x0, t, ctx)
            msg = f"{what}, D(x0, t={t}) of {run.T} with {run.D!r}" + "".join(f"; {n}" for n in notes)
            return pil(x0[0]), pil(x_t[0]), msg
        except ColddiffError as e:
            return None, None, f"⚠ {e}"

    def restore(self, upload, estimate, t, steps=None, k: int = 5):
        """(input, direct, Algorithm 1, Algorithm 2, Algorithm 2 trajectory, message) for an uploaded image;
        ``steps``: the sampling steps of Algorithms 1 and 2 (all, N, N:quadratic or a list; default the app's)."""
        blank = (None,) * 5
        try:
            run = self.run
            schedule = parse_schedule(self.restore_schedule if steps is None else steps)
            y, notes = self.read_upload(upload)
            if estimate:
                tt = estimate_t(run, y)
                t = int(tt[0])
                notes.insert(0, f"estimated t = {t} of {run.T}")
            else:
                t = int(user_t(t, run.T, "t"))
                notes.insert(0, f"t = {t} of {run.T} (chosen)")
            if not schedule.full:
                notes.insert(1, f"steps {','.join(map(str, schedule.for_t(t, run.T)))}")
            outs: List[Any] = [pil(y[0])]
            for sampler in ("direct", "algorithm1"):
                try:
                    outs.append(pil(restore(run, y, t, sampler=sampler, progress=False, schedule=schedule)[0]))
                except ConfigError as e:
                    outs.append(None)
                    notes.append(f"{sampler}: {e}")
            try:  # Algorithm 2 with its trajectory (x_s and x0_hat at k steps)
                check_restorable(run, "algorithm2")
                final, steps, xs, x0s = algorithm2_trajectory(run, y[:1], t, None, k, schedule=schedule)
                outs += [pil(final[0]), trajectory_grid(final, steps, xs, x0s)]
            except ConfigError as e:
                outs += [None, None]
                notes.append(f"algorithm2: {e}")
            return (*outs, "; ".join(notes))
        except ColddiffError as e:
            return (*blank, f"⚠ {e}")

    def generate(self, seed, noise, sampler, n, steps=None):
        """(grid of n generated images, message); ``steps``: the sampling steps (default the app's)."""
        try:
            schedule = parse_schedule(self.schedule if steps is None else steps)
            n = int(n)
            if not 1 <= n <= 64:
                raise ConfigError(f"number of images must be 1..64, got {n}")
            notes: List[str] = []
            with _warnings_to(notes):
                images = generate(self.run, n, sampler=str(sampler), noise=float(noise), seed=int(seed),
                                  progress=False, schedule=schedule)
            return grid(images), "; ".join([f"{n} image(s) from t = T = {self.run.T} with {sampler}, start noise "
                                            f"{float(noise):g}, seed {int(seed)}"
                                            + ("" if schedule.full else f", steps {schedule}")]
                                           + [f"note: {m}" for m in notes])
        except (ColddiffError, ValueError, TypeError) as e:
            return None, f"⚠ {e}"


def grid(images: torch.Tensor, pad: int = 2) -> Image.Image:
    """Images at their own size in a near-square grid: ceil(sqrt(n)) columns, ``pad`` pixels apart."""
    n = images.shape[0]
    cols = math.ceil(math.sqrt(n))
    rows = [list(images[i:i + cols]) for i in range(0, n, cols)]
    return make_grid(rows, scale=1, pad=pad)


def grid_size(n: int, h: int, w: int, pad: int = 2) -> Tuple[int, int]:
    """(width, height) of :func:`grid` for n images of h×w."""
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    return cols * (w + pad) + pad, rows * (h + pad) + pad


# ---------------------------------------------------------------------------- the page
def _supports(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _theme(gr):
    # system fonts: the default theme would fetch web fonts, and a local demo needs no network
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "monospace"])


TABS = ("degrade", "restore", "generate")


def build_demo(run, seed: int = 0, tab: str = "degrade", schedule=None):
    """The Gradio Blocks page for ``run`` (not started), opening on ``tab``; ``demo.app_state`` is its :class:`DemoApp`.

    When the run's test images are available, the restore tab starts with an example (a held-out
    image degraded to T/2), and every tab is filled once when the page loads.  ``schedule``: the sampling
    steps the restore and generate tabs start with (every step by default).
    """
    gr = _gradio()
    app = DemoApp(run, seed, schedule)
    steps_label = "sampling steps: all, N, N:quadratic or a list ending at 0"
    c = run.cfg.data
    blocks_kw = dict(title=f"colddiff: {run.name}", analytics_enabled=False)
    if _supports(gr.Blocks.__init__, "css"):   # Gradio 5 takes theme and css here, Gradio 6 in launch()
        blocks_kw.update(css=CSS, theme=_theme(gr))
    if tab not in TABS:
        raise ConfigError(f"--tab must be one of {', '.join(TABS)}, got {tab!r}")
    n_test = max(1, app.test_images().shape[0])
    example = app.example_upload()
    with gr.Blocks(**blocks_kw) as demo:
        gr.Markdown(f"# colddiff: {run.name}\n"
                    f"Cold Diffusion restorer for **{run.D!r}** on {c.name} "
                    f"({c.image_size}×{c.image_size}, {c.channels} channel(s)), step {run.step:,}, "
                    f"{'EMA' if run.ema else 'raw'} weights.")
        with gr.Tabs(selected=tab):
            with gr.Tab("Degrade", id="degrade"):
                gr.Markdown("The forward process: pick a held-out test image (or upload one) and slide t to see "
                            "x_t = D(x0, t). Right-click the result to save it and restore it in the next tab.")
                with gr.Row():
                    with gr.Column():
                        index = gr.Slider(0, n_test - 1, value=0, step=1, label="test image")
                        t_deg = gr.Slider(0, run.T, value=run.T // 2, step=1, label="t")
                        up_deg = gr.File(label="or upload an image", file_count="single")
                        go_deg = gr.Button("Degrade", variant="primary")
                    x0_out = gr.Image(label="x0", type="pil", format="png", elem_classes="pixelated", height=240)
                    xt_out = gr.Image(label="D(x0, t)", type="pil", format="png", elem_classes="pixelated",
                                      height=240)
                msg_deg = gr.Markdown()
                deg_io = dict(fn=app.degrade, inputs=[index, t_deg, up_deg], outputs=[x0_out, xt_out, msg_deg])
                go_deg.click(**deg_io, api_name="degrade")
                t_deg.release(**deg_io, api_name=False)
                index.release(**deg_io, api_name=False)
            with gr.Tab("Restore", id="restore"):
                gr.Markdown("Upload an image degraded by this run's kind of degradation "
                            f"({c.image_size}×{c.image_size}; other sizes are resized, colour is converted). "
                            "t is estimated (the t whose restoration, degraded again, best reproduces the input), or chosen.")
                with gr.Row():
                    with gr.Column():
                        label = "degraded image" + (" (an example: a test image at t = T/2)" if example else "")
                        up_rs = gr.File(label=label, file_count="single", value=example)
                        estimate = gr.Checkbox(value=run.D.deterministic, label="estimate t")
                        t_rs = gr.Slider(1, run.T, value=run.T, step=1, label="t (when not estimated)")
                        steps_rs = gr.Textbox(value=str(app.restore_schedule), label=steps_label)
                        go_rs = gr.Button("Restore", variant="primary")
                    y_out = gr.Image(label="input", type="pil", format="png", elem_classes="pixelated", height=200)
                with gr.Row():
                    outs = [gr.Image(label=lab, type="pil", format="png", elem_classes="pixelated", height=200)
                            for lab in ("direct R(y, t)", "Algorithm 1", "Algorithm 2")]
                gr.Markdown("**Algorithm 2's trajectory**: the state x_s (top row) and the network's estimate "
                            "x0_hat = R(x_s, s) (bottom row) at a few steps s, from t down to the result.")
                traj = gr.Image(label="Algorithm 2 trajectory", show_label=False, type="pil", format="png")
                msg_rs = gr.Markdown()
                rs_io = dict(fn=app.restore, inputs=[up_rs, estimate, t_rs, steps_rs],
                             outputs=[y_out, *outs, traj, msg_rs])
                go_rs.click(**rs_io, api_name="restore")
            with gr.Tab("Generate", id="generate"):
                gr.Markdown("From the fully degraded start state (t = T) back to an image with the chosen sampler; "
                            "start noise breaks the symmetry of deterministic starts (the paper uses 0.002).")
                names = sampler_names(run.D)
                with gr.Row():
                    with gr.Column():
                        seed_in = gr.Number(value=0, precision=0, label="seed")
                        noise_in = gr.Number(value=0.002, label="start noise (std)")
                        sampler_in = gr.Dropdown(names, value="algorithm2" if "algorithm2" in names else names[0],
                                                 label="sampler")
                        n_in = gr.Slider(1, 64, value=16, step=1, label="images")
                        steps_gen = gr.Textbox(value=str(app.schedule), label=steps_label)
                        go_gen = gr.Button("Generate", variant="primary")
                    gen_out = gr.Image(label="generated", type="pil", format="png", elem_classes="pixelated",
                                       height=360)
                msg_gen = gr.Markdown()
                gen_io = dict(fn=app.generate, inputs=[seed_in, noise_in, sampler_in, n_in, steps_gen],
                              outputs=[gen_out, msg_gen])
                go_gen.click(**gen_io, api_name="generate")
        # fill every tab once on load (the restore tab only when it has its example)
        demo.load(**deg_io, api_name=False)
        if example:
            demo.load(**rs_io, api_name=False)
        demo.load(**gen_io, api_name=False)
    demo.app_state = app
    return demo


def launch_kwargs(gr, host: str, port: Optional[int], open_browser: bool = False) -> dict:
    """launch() keywords for this Gradio version (theme/css moved there in Gradio 6)."""
    kw = dict(server_name=host, server_port=port or None, inbrowser=open_browser, share=False, show_error=True,
              max_file_size=MAX_UPLOAD_BYTES)
    if _supports(gr.Blocks.launch, "css") and not _supports(gr.Blocks.__init__, "css"):
        kw.update(css=CSS, theme=_theme(gr))
    if _supports(gr.Blocks.launch, "ssr_mode"):
        kw["ssr_mode"] = False     # plain client rendering: no Node.js needed
    return kw


def serve(run, host: str = "127.0.0.1", port: Optional[int] = 7860, open_browser: bool = False,
          tab: str = "degrade", schedule=None) -> None:
    """Build the page for ``run`` and serve it until Ctrl-C."""
    if isinstance(port, bool) or not isinstance(port, (int, type(None))) or not 0 <= (port or 0) <= 65535:
        raise ConfigError(f"--port must be a port number 1..65535 (or 0: the first free one from 7860), got {port!r}")
    gr = _gradio()
    demo = build_demo(run, tab=tab, schedule=schedule)
    print(f"colddiff demo of {run.name} (Ctrl-C stops it):", flush=True)
    try:
        demo.launch(**launch_kwargs(gr, host, port, open_browser))
    except OSError as e:  # the port is taken, or the address is not this machine's
        raise ConfigError(f"cannot serve on {host}:{port} ({e}); pick another --port") from None


__all__ = ["DemoApp", "build_demo", "serve", "grid", "grid_size", "launch_kwargs"]
