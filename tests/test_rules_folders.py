"""Rule 2 of the third reliability audit (issue 30): data folders never lead outside themselves.

Only regular files inside the folder's real path are read; symbolic links that leave it and special
files (FIFOs, devices, sockets) are skipped with one warning line that counts them; a run's --out
inside its own data folder is refused."""
import logging
import os
import threading

import numpy as np
import pytest
from PIL import Image

from colddiff import cli
from colddiff.data.folders import list_image_files, load_folder
from colddiff.errors import InputError


def _pngs(folder, n=3, size=12):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(folder / f"{i}.png")


@pytest.fixture
def hostile(tmp_path):
    """A data folder with 3 images, a link to /, a link to a file outside, a FIFO named like an image and
    a link back inside the folder."""
    d = tmp_path / "data"
    _pngs(d / "digits")
    outside = tmp_path / "elsewhere"
    _pngs(outside, n=2)
    (d / "root").symlink_to("/")
    (d / "other.png").symlink_to(outside / "0.png")
    (d / "outside-dir").symlink_to(outside)
    os.mkfifo(d / "pipe.png")
    (d / "again").symlink_to(d / "digits")   # inside: followed once (the same real folder is not read twice)
    return d


def _listed_within(folder, seconds=20):
    """list_image_files in a thread: a hang fails the test instead of blocking it."""
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("files", list_image_files(folder)), daemon=True)
    th.start()
    th.join(seconds)
    assert not th.is_alive(), f"listing {folder} did not finish in {seconds} s"
    return out["files"]


def test_only_regular_files_inside_the_folder_are_listed(hostile, caplog):
    caplog.set_level(logging.WARNING)
    files = _listed_within(hostile)
    real = os.path.realpath(hostile)
    assert sorted(f.name for f in files) == ["0.png", "1.png", "2.png"]
    assert all(os.path.realpath(f).startswith(real + os.sep) for f in files)
    warnings = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warnings) == 1
    assert "3 symbolic link(s) leading outside" in warnings[0] and "1 special file(s)" in warnings[0]


def test_a_folder_of_only_links_outside_and_fifos_has_no_images(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "root").symlink_to("/")
    os.mkfifo(d / "a.png")
    assert _listed_within(d) == []
    with pytest.raises(InputError, match="no images"):
        load_folder(str(d))


def test_load_folder_reads_the_inside_images_and_does_not_block_on_the_fifo(hostile):
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("ds", load_folder(str(hostile))), daemon=True)
    th.start()
    th.join(60)
    assert not th.is_alive(), "loading a folder holding a FIFO blocked"
    ds = out["ds"]
    assert len(ds) == 3 and ds[0][0].shape == (1, 12, 12)


def test_proc_self_does_not_hang():
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    files = _listed_within("/proc/self", seconds=30)
    assert all(os.path.realpath(f).startswith(os.path.realpath("/proc/self")) for f in files)


def test_a_split_folder_that_is_a_link_outside_is_refused(tmp_path):
    d, outside = tmp_path / "data", tmp_path / "elsewhere"
    _pngs(d / "test")
    _pngs(outside)
    (d / "train").symlink_to(outside)
    with pytest.raises(InputError, match="train/ is a link to .* outside the data folder"):
        load_folder(str(d), "train")
    assert len(load_folder(str(d), "test")) == 3


@pytest.mark.parametrize("inside", ["run", "sub/run", "."])
def test_train_out_inside_its_own_data_folder_is_refused(tmp_path, capsys, inside):
    d = tmp_path / "photos"
    _pngs(d, size=32)
    out = d / inside
    before = sorted(p.name for p in d.rglob("*"))
    code = cli.main(["train", "--preset", "folder-blur", "--set", f"data.name=folder:{d}", "train.steps=1",
                     "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "inside its own data folder" in err and "internal error" not in err
    assert sorted(p.name for p in d.rglob("*")) == before  # nothing made


def test_train_out_beside_the_data_folder_is_not_refused_by_this_rule(tmp_path):
    from colddiff.data.folders import check_out_outside

    d = tmp_path / "photos"
    d.mkdir()
    check_out_outside(f"folder:{d}", tmp_path / "photos-run")   # a name that only starts like the folder
    check_out_outside("mnist-5k", d / "run")                      # not a folder data set
    link = tmp_path / "link-to-photos"
    link.symlink_to(d)
    with pytest.raises(Exception, match="inside its own data folder"):
        check_out_outside(f"folder:{link}", d / "run")              # through a link: the real paths count


def test_the_library_train_refuses_out_inside_its_data_folder(tmp_path):
    from colddiff.errors import ConfigError
    from colddiff.presets import resolve_config
    from colddiff.training import train

    d = tmp_path / "photos"
    _pngs(d, size=32)
    cfg = resolve_config("folder-blur", None, [f"data.name=folder:{d}", "train.steps=1"])
    with pytest.raises(ConfigError, match="inside its own data folder"):
        train(cfg, d / "runs" / "x", progress=False)
    assert not (d / "runs").exists()
