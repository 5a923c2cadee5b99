"""`colddiff demo`: the handlers behind the page (always), and the page itself served, driven over HTTP and
screenshotted in headless Chromium (with the optional extra colddiff[demo]; CI installs it).

The handlers are plain methods of DemoApp, so bad uploads and impossible settings are checked
without Gradio; the served test starts `colddiff demo` as a user would, on 127.0.0.1 and a free
port, calls /restore and /generate through gradio_client, takes a screenshot and stops the server.
"""
import os
import signal
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import torch
from PIL import Image

from colddiff.demo import DemoApp, grid_size
from colddiff.images import save_image

from conftest import make_run

BLUR = dict(name="blur", T=4, params=dict(kernel_size=7, sigma=1.5, padding="circular"))
REQUIRE = os.environ.get("COLDDIFF_REQUIRE_DEMO") == "1"   # CI: fail instead of skipping without the extra


@pytest.fixture(scope="module")
def blur_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("demo-run"), BLUR)


@pytest.fixture(scope="module")
def degraded(blur_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    x0 = blur_run.dataset("test")[3][0][None]
    save_image(blur_run.degrade(x0, 3)[0], folder / "blurred.png")
    return folder / "blurred.png"


def test_degrade_tab_shows_x0_and_D_of_x0(blur_run):
    app = DemoApp(blur_run)
    x0, x_t, msg = app.degrade(2, 3)
    test = app.test_images()
    want = blur_run.degrade(test[2:3], 3)[0]
    assert x0.size == x_t.size == (28, 28) and "t=3" in msg
    import numpy as np

    from colddiff.images import to_uint8

    assert np.array_equal(np.asarray(x_t), to_uint8(want))     # the page shows exactly D(x0, t)
    assert app.degrade(2, 99)[2].startswith("⚠") and "has steps 0..4" in app.degrade(2, 99)[2]
    assert "0..49" in app.degrade(50, 1)[2]


def test_restore_tab_gives_three_methods_and_the_trajectory(blur_run, degraded):
    app = DemoApp(blur_run)
    y, direct, alg1, alg2, traj, msg = app.restore(str(degraded), False, 3)
    assert y.size == direct.size == alg1.size == alg2.size == (28, 28)
    assert traj.width > 4 * 28 and traj.height > 2 * 28 and "t = 3 of 4 (chosen)" in msg
    y2 = app.restore(str(degraded), True, 1)
    assert "estimated t = " in y2[-1] and y2[3].size == (28, 28)


def test_bad_uploads_are_messages_not_crashes(blur_run, degraded, tmp_path):
    app = DemoApp(blur_run)
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    out = app.restore(str(text), True, 2)
    assert out[:5] == (None,) * 5 and out[5].startswith("⚠") and "not an image" in out[5]
    huge = tmp_path / "huge.png"
    with open(huge, "wb") as f:
        f.truncate(11 * 1024 * 1024)
    assert "upload an image under 10 MB" in app.restore(str(huge), True, 2)[5]
    giant = tmp_path / "giant.png"
    Image.new("1", (5000, 5000)).save(giant)
    assert "5000×5000 pixels" in app.restore(str(giant), True, 2)[5]
    assert "upload an image first" in app.restore(None, True, 2)[5]
    rgb = tmp_path / "colour.png"
    Image.open(degraded).convert("RGB").resize((56, 56)).save(rgb)   # other channels and size: converted
    out = app.restore(str(rgb), False, 2)
    assert out[3].size == (28, 28) and "converted 1 image(s) to 1 channel(s)" in out[5] and "resized" in out[5]
    assert "converted" in app.degrade(0, 2, str(rgb))[2]


def test_random_degradations_restore_directly_and_say_why_not_more(tmp_path, degraded):
    run = make_run(tmp_path, dict(name="mask", T=6, params=dict(position="random", quantize=False)))
    app = DemoApp(run)
    out = app.restore(str(degraded), True, 2)
    assert out[0] is None and "--t N" in out[5]                       # t cannot be estimated
    y, direct, alg1, alg2, traj, msg = app.restore(str(degraded), False, 2)
    assert direct.size == (28, 28) and alg1 is None and alg2 is None and traj is None
    assert "algorithm2:" in msg and "random per image" in msg


def test_generate_tab_grid_and_refusals(blur_run):
    app = DemoApp(blur_run)
    img, msg = app.generate(1, 0.002, "algorithm2", 5)
    assert img.size == grid_size(5, 28, 28) and "5 image(s)" in msg and "out of distribution" in msg
    assert app.generate(1, 0.0, "algorithm2", 5)[0].tobytes() == app.generate(1, 0.0, "algorithm2", 5)[0].tobytes()
    assert app.generate(1, 0.002, "algorithm2", 0)[1].startswith("⚠")
    assert "noise" in app.generate(1, -1, "algorithm2", 2)[1]


def test_demo_without_gradio_says_what_to_install(blur_run, monkeypatch, capsys):
    from colddiff.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)
    assert main(["demo", str(blur_run.folder), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'colddiff[demo]'" in err


def test_bad_port_is_one_line(blur_run, capsys):
    from colddiff.cli import main

    assert main(["demo", str(blur_run.folder), "--port", "70000", "--device", "cpu"]) == 2
    assert "--port must be a port number 1..65535" in capsys.readouterr().err


# ---------------------------------------------------------------------------- the served page
def _have(mod):
    try:
        __import__(mod)
        return True
    except ImportError:
        return False


def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not (_have("gradio") and _have("gradio_client")) and not REQUIRE,
                    reason="the demo extra is not installed (pip install 'colddiff[demo]'; CI installs it)")
def test_served_demo_over_http_and_in_headless_chromium(blur_run, degraded, tmp_path):
    from gradio_client import Client, handle_file

    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "NO_PROXY": "127.0.0.1,localhost"}
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "colddiff", "demo", str(blur_run.folder), "--port", str(port),
                             "--device", "cpu"], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "demo did not start in 120 s: " + (tmp_path / "server.log").read_text()
            time.sleep(0.5)
        client = Client(url, verbose=False)
        assert {"/degrade", "/restore", "/generate"} <= set(client.view_api(print_info=False,
                                                                            return_format="dict")["named_endpoints"])
        y, direct, alg1, alg2, traj, msg = client.predict(handle_file(str(degraded)), False, 3, api_name="/restore")
        for p in (y, direct, alg1, alg2):
            assert Image.open(p).size == (28, 28)
        assert Image.open(traj).width > 4 * 28 and "t = 3 of 4" in msg
        # the same restoration as the library gives (PNG: exact pixels)
        from colddiff.images import read_image, to_uint8
        from colddiff.restoration import restore

        want = restore(blur_run, read_image(degraded, channels=1)[None], 3, sampler="algorithm2", progress=False)[0]
        import numpy as np

        assert np.array_equal(np.asarray(Image.open(alg2).convert("L")), to_uint8(want))
        grid_path, gmsg = client.predict(2, 0.002, "algorithm2", 7, api_name="/generate")
        assert Image.open(grid_path).size == grid_size(7, 28, 28) and "7 image(s)" in gmsg
        bad = tmp_path / "bad.png"
        bad.write_text("not an image")
        assert "not an image" in client.predict(handle_file(str(bad)), True, 2, api_name="/restore")[-1]
        # a second server on the same port: one line, exit status 2
        taken = subprocess.run([sys.executable, "-m", "colddiff", "demo", str(blur_run.folder), "--port", str(port),
                                "--device", "cpu"], capture_output=True, text=True, env=env, timeout=300)
        assert taken.returncode == 2 and "pick another --port" in taken.stderr
        assert len(taken.stderr.strip().splitlines()) == 1, taken.stderr

        browser = chromium()
        if browser or os.environ.get("COLDDIFF_REQUIRE_CHROMIUM") == "1":
            assert browser, "COLDDIFF_REQUIRE_CHROMIUM=1 but no chromium on PATH"
            shot = tmp_path / "demo.png"
            flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
                     "--window-size=1200,1000", f"--screenshot={shot}"]
            subprocess.run([browser, *flags, url], capture_output=True, timeout=180)
            im = Image.open(shot).convert("L")
            hist = im.histogram()
            assert im.size == (1200, 1000) and max(hist) < 0.97 * sum(hist)   # not one flat colour
            if os.environ.get("COLDDIFF_DEMO_SCREENSHOT"):                    # keep it to look at
                shutil.copyfile(shot, os.environ["COLDDIFF_DEMO_SCREENSHOT"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
            killed = False
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed = True
        log.close()
    # it stops when asked (SIGTERM, as a service manager stops it), not only when killed
    assert not killed, "the demo did not stop within 30 s of SIGTERM: " + (tmp_path / "server.log").read_text()[-2000:]
    assert proc.returncode in (0, -signal.SIGTERM), (proc.returncode, (tmp_path / "server.log").read_text()[-2000:])
