"""CPU smoke runs of the command line, including its one-line errors."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from colddiff.cli import main
from colddiff.config import parse_value


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "colddiff", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def rgb_image(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "img.png"
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(p)
    return p


def test_degrade_writes_a_strip_from_the_embedded_digits(tmp_path, capsys):
    out = tmp_path / "strip.png"
    code = main(["degrade", "--degradation", "blur", "--input", "mnist-5k", "--n", "3",
                 "--steps", "0,5,10,20", "--out", str(out)])
    assert code == 0
    im = Image.open(out)
    assert im.width > 4 * 84 and im.height > 3 * 84  # 4 columns, 3 rows of enlarged digits
    assert "wrote" in capsys.readouterr().out


def test_degrade_an_image_folder_with_params(tmp_path, rgb_image):
    out = tmp_path / "grid.png"
    code = main(["degrade", "-d", "mask", "--param", "position=center", "--param", "fill=random", "--T", "10",
                 "--input", str(rgb_image.parent), "--steps", "0,T", "--out", str(out)])
    assert code == 0
    strip = np.asarray(Image.open(out).convert("RGB"))
    assert strip.std() > 10  # not blank


def test_module_entry_point_and_help():
    r = run_cli("--help")
    assert r.returncode == 0 and "degrade" in r.stdout
    r = run_cli("degrade", "--help")
    assert r.returncode == 0 and "example" in r.stdout
    r = run_cli("degradations")
    assert r.returncode == 0 and "snow" in r.stdout and "kernel_size" in r.stdout
    r = run_cli("networks")
    assert r.returncode == 0 and "cifar10" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["-d", "blurr", "--input", "mnist-5k"], "unknown degradation 'blurr'; known degradations:"),
    (["-d", "blur", "--input", "no/such/file.png"], "input not found"),
    (["-d", "blur", "--input", "mnist-5k", "--steps", "0,99"], "out of range"),
    (["-d", "blur", "--input", "mnist-5k", "--steps", "a,b"], "--steps takes whole numbers"),
    (["-d", "blur", "--input", "mnist-5k", "--param", "sigma"], "key=value"),
    (["-d", "blur", "--input", "mnist-5k", "--param", "sigmaa=3"], "no parameter"),
    (["-d", "blur", "--input", "mnist-5k", "--param", "channels=3"], "channels=3 contradicts the input, whose images have channels 1"),
    (["-d", "resolution", "--T", "9", "--input", "mnist-5k"], "use T <= 4"),
    (["-d", "animorph", "--input", "mnist-5k"], "needs partner images"),
])
def test_bad_input_gives_one_clear_line_and_no_output(tmp_path, capsys, args, message):
    out = tmp_path / "o.png"
    assert main(["degrade", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


def test_errors_in_a_separate_process_are_one_line_too():
    r = run_cli("degrade", "-d", "blurr", "--input", "mnist-5k")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_unreadable_image_is_named(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    r = run_cli("degrade", "-d", "blur", "--input", str(bad), "--out", str(tmp_path / "o.png"))
    assert r.returncode == 2 and "cannot read image" in r.stderr and "broken.png" in r.stderr


def test_unknown_option_and_missing_command():
    r = run_cli("degrade", "--degradation", "blur", "--input", "mnist-5k", "--bogus")
    assert r.returncode == 2 and "--help" in r.stderr
    assert run_cli().returncode == 2


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("2.5") == 2.5
    assert parse_value("true") is True and parse_value("none") is None
    assert parse_value("circular") == "circular"


def test_degrade_at_a_presets_settings(tmp_path, capsys):
    out = tmp_path / "snow.png"
    assert main(["degrade", "--preset", "celeba-snow", "--input", "mnist-5k", "--n", "2", "--steps", "0,200",
                 "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "AuthorsSnow(T=200, level=4" in said and "image_size=128, channels=3" in said
    im = Image.open(out)
    assert im.width > 2 * 128 and im.height > 2 * 128  # the preset's 128 px, two columns, two rows
    assert main(["degrade", "--preset", "mnist-blur", "--T", "5", "--param", "padding=zero", "--input", "mnist-5k",
                 "--n", "1", "--out", str(tmp_path / "b.png")]) == 0
    said = capsys.readouterr().out
    assert "T=5" in said and "padding='zero'" in said and "image_size=32" in said
    assert main(["degrade", "--input", "mnist-5k", "--out", str(tmp_path / "x.png")]) == 2
    assert main(["degrade", "--preset", "mnist-blur", "-d", "mask", "--input", "mnist-5k",
                 "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "--degradation NAME" in err and "uses the blur degradation, not mask" in err
    assert not (tmp_path / "x.png").exists()
