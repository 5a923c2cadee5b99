"""Your own photos end to end: EXIF orientation wherever images are read, folder data sets cutting
crops of full-size photos at load time (seeded, exact on resume), test pairs at native size
(`colddiff degrade --t`), and restore.json recording the tiling."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from colddiff import data
from colddiff.cli import main
from colddiff.data.folders import ImageFiles
from colddiff.images import read_image, save_image
from colddiff.presets import resolve_config
from colddiff.restoration import tiling
from colddiff.runs import load_run
from colddiff.training import BatchStream, train, resume_config

from conftest import make_run

TINY_COLOUR = ["model.dim=8", "model.dim_mults=1,2", "train.batch_size=4", "train.log_every=10",
               "train.checkpoint_every=3", "train.sample_every=0", "train.warmup_steps=0", "train.ema_start=0",
               "train.keep_last=5"]


def _photo(H, W, seed=0, texture=12.0) -> np.ndarray:
    """A colour 'photo' (H, W, 3) uint8: smooth gradients, a few discs and fine random texture."""
    g = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, H), np.linspace(0, 1, W), indexing="ij")
    img = np.stack([xx, yy, 1 - xx * yy], -1) * 180 + g.normal(0, texture, (H, W, 3))
    for _ in range(8):
        cy, cx, r = g.random(3)
        img[((yy - cy) ** 2 + (xx - cx) ** 2) < (0.04 + 0.1 * r) ** 2] = g.integers(0, 256, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def _save_rotated_jpeg(path, upright: np.ndarray, orientation: int = 6) -> None:
    """Store ``upright`` as a camera does for a portrait shot: the pixels turned (here a quarter turn,
    Orientation 6: the viewer turns them 90° clockwise back) and the EXIF tag saying how to show them."""
    stored = np.rot90(upright, k=1).copy()   # 90° anticlockwise: Orientation 6 turns it back clockwise
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, quality=95, exif=exif.tobytes())


# ---------------------------------------------------------------------------- EXIF orientation
def test_a_portrait_jpeg_with_an_exif_orientation_is_read_upright(tmp_path):
    up = _photo(40, 20, seed=1, texture=2)            # a 20x40 portrait (W x H)
    _save_rotated_jpeg(tmp_path / "portrait.jpg", up)
    with Image.open(tmp_path / "portrait.jpg") as im:
        assert im.size == (40, 20)                    # the file's pixels lie on their side
    x = read_image(tmp_path / "portrait.jpg", channels=3)
    assert tuple(x.shape) == (3, 40, 20)
    ref = torch.from_numpy(up.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)
    err = float((x - ref).abs().mean())
    assert err < 0.1                                  # the same picture, up to JPEG loss (0.07 here)
    for wrong in (ref.flip(-1), ref.flip(-2), ref.flip(-1, -2)):  # not mirrored, not upside down
        assert float((x - wrong).abs().mean()) > 3 * err


def test_the_folder_data_set_reads_exif_photos_upright(tmp_path):
    up = _photo(64, 40, seed=2, texture=2)
    _save_rotated_jpeg(tmp_path / "p.jpg", up)
    ds = data.load(f"folder:{tmp_path}", image_size=16, channels=3)
    assert ds.tiles == [(40 // 16) * (64 // 16)]      # counted in upright tiles: 2 columns x 4 rows
    ref = torch.from_numpy(up.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)
    x, _ = ds[0]                                       # tile 0: top-left of the centred grid
    top, left = (64 - 64) // 2, (40 - 32) // 2
    assert (x - ref[:, top:top + 16, left:left + 16]).abs().mean() < 0.1


def test_restore_keeps_a_rotated_phone_photo_upright(tmp_path):
    run_dir = tmp_path / "run"
    make_run(run_dir, dict(name="blur", T=4, params=dict(kernel_size=3, sigma=1.0, padding="reflect")),
             data=dict(name="mnist-5k", image_size=16, channels=3))
    inp = tmp_path / "in"
    inp.mkdir()
    _save_rotated_jpeg(inp / "phone.jpg", _photo(40, 20, seed=3))
    assert main(["restore", str(run_dir), "--input", str(inp), "--t", "2", "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    for s in ("direct", "algorithm2"):
        with Image.open(tmp_path / "out" / f"phone.{s}.png") as im:
            assert im.size == (20, 40)                # portrait, as the phone showed it


# ---------------------------------------------------------------------------- crops of full-size photos
@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three full-size 'photos' of different sizes, and one already at the run's 32 px."""
    folder = tmp_path_factory.mktemp("photos")
    for k, (H, W) in enumerate([(120, 160), (100, 90), (70, 130)]):
        Image.fromarray(_photo(H, W, seed=10 + k)).save(folder / f"p{k}.png")
    Image.fromarray(_photo(32, 32, seed=20)).save(folder / "small.png")
    return folder


def test_large_photos_are_cut_at_their_own_scale_one_item_per_tile(photos):
    ds = data.load(f"folder:{photos}", image_size=32, channels=3)
    assert isinstance(ds, ImageFiles) and ds.crops_at_load
    assert ds.tiles == [(160 // 32) * (120 // 32), (90 // 32) * (100 // 32), (130 // 32) * (70 // 32), 1]
    assert len(ds) == sum(ds.tiles)
    full = read_image(photos / "p0.png", channels=3)
    # evaluation items: the centred grid of whole tiles, never resized
    x, _ = ds[0]
    assert torch.equal(x, full[:, 12:44, 0:32])
    x, _ = ds[6]                                       # row 1, column 1 of a 5-column grid
    assert torch.equal(x, full[:, 44:76, 32:64])
    # training items: a crop at a place drawn from the key, the same for the same key
    a, b, c = ds[(0, 123)][0], ds[(0, 123)][0], ds[(0, 124)][0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    windows = full.unfold(1, 32, 1).unfold(2, 32, 1)    # every 32x32 window of the photo
    assert (windows - a[:, None, None]).abs().amax(dim=(0, 3, 4)).min() == 0   # a is one of them, unscaled
    # a photo already at the run's size is used as it is
    last = len(ds) - 1
    assert torch.equal(ds[last][0], read_image(photos / "small.png", channels=3))
    assert torch.equal(ds[(last, 5)][0], ds[last][0])


def test_folders_of_small_images_keep_the_centre_crop_and_resize_path(tmp_path):
    for k in range(3):
        Image.fromarray(_photo(24, 30, seed=k)).save(tmp_path / f"s{k}.png")
    ds = data.load(f"folder:{tmp_path}", image_size=32, channels=3)
    assert not ds.crops_at_load and len(ds) == 3 and ds.tiles == [1, 1, 1]
    assert tuple(ds[0][0].shape) == (3, 32, 32) and torch.equal(ds[(0, 9)][0], ds[0][0])


def test_a_prepared_copy_of_large_photos_is_refused_in_one_line(photos, capsys):
    assert main(["data", "prepare", f"folder:{photos}", "--size", "32"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "random crops" in err


def _stream(ds, seed, **state):
    return BatchStream(ds, batch_size=5, seed=seed, **state)


def test_the_crops_follow_the_seeded_order_and_a_restarted_stream_cuts_the_same_ones(photos):
    ds = data.load(f"folder:{photos}", image_size=32, channels=3)
    s = _stream(ds, seed=7)
    first = [s.next() for _ in range(4)]
    state = s.state()
    rest = [s.next() for _ in range(9)]                # crosses two epochs (len(ds) = 30)
    again = _stream(ds, seed=7, **state)
    assert all(torch.equal(a, b) for a, b in zip(rest, [again.next() for _ in range(9)]))
    other = _stream(ds, seed=8)
    assert not torch.equal(first[0], other.next())     # the seed changes the crops
    # later epochs visit the same photos in new orders, at new places (the 32-px image is always itself)
    small = read_image(photos / "small.png", channels=3)
    seen = [x for x in torch.cat(first + rest) if not torch.equal(x, small)]
    assert len(seen) >= 60 and len({tuple(x.flatten()[:64].tolist()) for x in seen}) == len(seen)


def test_training_on_full_size_photos_resumes_bit_identically(photos, tmp_path):
    cfg = resolve_config("folder-blur", None, [f"data.name=folder:{photos}", "train.steps=6", *TINY_COLOUR])
    whole = train(cfg, tmp_path / "whole", progress=False)
    train(resolve_config("folder-blur", None, [f"data.name=folder:{photos}", "train.steps=3", *TINY_COLOUR]),
          tmp_path / "split", progress=False)
    resumed = train(resume_config(tmp_path / "split", ["train.steps=6"]), tmp_path / "split", resume=True,
                    progress=False)
    assert resumed["weights_sha256"] == whole["weights_sha256"]
    assert load_run(tmp_path / "whole", device="cpu").step == 6


# ---------------------------------------------------------------------------- test pairs at native size
@pytest.fixture(scope="module")
def blur_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    make_run(folder, dict(name="blur", T=6, params=dict(kernel_size=5, sigma=1.0, padding="reflect")),
             data=dict(name="mnist-5k", image_size=16, channels=3))
    return folder


def test_degrade_with_a_run_writes_one_image_per_input_at_its_own_size(blur_run, photos, tmp_path, capsys):
    out = tmp_path / "blurred"
    assert main(["degrade", "--run", str(blur_run), "--t", "4", "--input", str(photos), "--out", str(out)]) == 0
    run = load_run(blur_run, device="cpu")
    record = json.loads((out / "degrade.json").read_text())
    assert record["t"] == 4 and record["degradation"] == repr(run.D) and len(record["images"]) == 4
    for src in sorted(photos.glob("*.png")):
        x0 = read_image(src, channels=3)
        with Image.open(out / src.name) as im:
            assert im.size == (x0.shape[-1], x0.shape[-2])          # same size, same name
        y = read_image(out / src.name, channels=3)
        expect = run.D.observe(x0[None], torch.tensor([4]))[0]
        assert (y - expect).abs().max() <= 1 / 127.5 + 1e-6           # D(x0, 4), to 8 bits
    # restore names its results after the same stems: sharp, blurred and restored pair up by name
    assert main(["restore", str(blur_run), "--input", str(out), "--t", "4", "--out", str(tmp_path / "restored"),
                 "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "restored").glob("*.algorithm2.png")) == \
        sorted(f"{p.stem}.algorithm2.png" for p in photos.glob("*.png"))


def test_degrade_with_a_preset_at_native_size_and_a_rerun_replaces_its_own_result(photos, tmp_path):
    out = tmp_path / "b"
    for t in ("3", "5"):
        assert main(["degrade", "--preset", "folder-blur", "--t", t, "--input", str(photos / "p1.png"),
                     "--out", str(out)]) == 0
    assert json.loads((out / "degrade.json").read_text())["t"] == 5
    with Image.open(out / "p1.png") as im:
        assert im.size == (90, 100)
    assert sorted(p.name for p in out.iterdir()) == [".colddiff-output.json", "degrade.json", "p1.png"]


@pytest.mark.parametrize("args, words", [
    (["--preset", "folder-blur", "--t", "3", "--steps", "1,2"], "drop --steps"),
    (["--preset", "folder-blur", "--t", "3", "--size", "32"], "drop --size"),
    (["--preset", "folder-blur", "--t", "11"], "between 1 and T=10"),
    (["--preset", "folder-blur", "--t", "3", "--degradation", "blur"], "one of --run RUN"),
    (["--preset", "folder-blur", "--t", "3", "--no-out"], "--out FOLDER"),
    (["--degradation", "mask", "--param", "position=center", "--t", "3"], "applies only to"),
])
def test_bad_test_pair_requests_are_one_line_errors_and_write_nothing(photos, tmp_path, capsys, args, words):
    out = tmp_path / "o"
    extra = [] if "--no-out" in args else ["--out", str(out)]
    args = [a for a in args if a != "--no-out"]
    assert main(["degrade", "--input", str(photos), *args, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert not out.exists()


def test_degrade_refuses_to_write_into_a_folder_of_the_users_photos(photos, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"x")
    assert main(["degrade", "--preset", "folder-blur", "--t", "3", "--input", str(photos), "--out", str(mine)]) == 2
    assert "did not write" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["holiday.jpg"]


# ---------------------------------------------------------------------------- restore.json records the tiling
def test_restore_json_records_whole_images_and_tiles(blur_run, photos, tmp_path):
    run = load_run(blur_run, device="cpu")
    # this network halves once: whole images up to 48x48 pixels at its lowest level, i.e. 96x96
    assert tiling(run, 90, 96) == {"whole": True, "tiles": 1}
    # above: the largest tile within that budget (96), the default overlap, 2 rows x 2 columns
    assert tiling(run, 120, 160) == {"whole": False, "tile": 96, "overlap": 32, "tiles": 4}
    plan = tiling(run, 120, 160, tile=64, overlap=16)
    assert plan == {"whole": False, "tile": 64, "overlap": 16, "tiles": 3 * 3}
    assert main(["restore", str(blur_run), "--input", str(photos / "p0.png"), "--t", "2", "--tile", "64",
                 "--overlap", "16", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    rec = json.loads((tmp_path / "r" / "restore.json").read_text())["images"][0]
    assert rec["tiling"] == plan and rec["size"] == [160, 120]


# ---------------------------------------------------------------------------- --t auto: consistent, then sharpest
def _dead_leaves(n=48, seed=0) -> torch.Tensor:
    """Overlapping discs of random colours with power-law radii: a natural-image-like test picture in [-1, 1]."""
    g = np.random.default_rng(seed)
    img = np.zeros((n, n, 3)) + g.uniform(0, 255, 3)
    yy, xx = np.mgrid[0:n, 0:n]
    for _ in range(200):
        r = (1 / g.uniform(1 / 12 ** 2, 1)) ** 0.5
        cy, cx = g.uniform(0, n, 2)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = g.uniform(0, 255, 3)
    return torch.from_numpy(img.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)


def test_gradient_sparsity_is_lowest_for_the_sharp_picture(tmp_path):
    from colddiff.restoration import gradient_sparsity

    run = make_run(tmp_path / "r", dict(name="blur", T=10, params=dict(kernel_size=5, sigma=1.0, padding="circular")),
                   data=dict(name="mnist-5k", image_size=16, channels=3))
    x0 = _dead_leaves()[None]
    blurred = run.D(x0, torch.tensor([3]))
    oversharp = x0 + 1.5 * (x0 - run.D(x0, torch.tensor([2])))   # unsharp masking: halos along the edges
    s = gradient_sparsity(torch.cat([x0, blurred, oversharp]))
    assert s[0] < s[1] and s[0] < s[2]
    assert gradient_sparsity(torch.zeros(1, 3, 8, 8)).isinf().all()   # no gradient at all


def test_auto_t_takes_the_sharpest_consistent_restoration_where_consistency_alone_is_flat(tmp_path):
    """A restorer that is consistent at every t <= t* (it returns D(x0, t* - t), which D(., t) takes back to y,
    plus a tiny colour shift, least at t = 1) leaves the consistency error flat there, with its minimum at t = 1,
    where the restoration is still blurred; the sharpest consistent restoration is the one at t*.  A sharper
    restoration that does not reproduce y (at t* + 2: x0 itself) is not taken."""
    from colddiff.restoration import estimate_t

    run = make_run(tmp_path / "r", dict(name="blur", T=10, params=dict(kernel_size=5, sigma=1.0, padding="circular")),
                   data=dict(name="mnist-5k", image_size=16, channels=3))
    x0 = _dead_leaves()[None].double()
    D = run.D
    for t_star in (3, 6):
        y = D(x0, torch.tensor([t_star])).float()

        def R(x, t, t_star=t_star):
            out = []
            for k in t.tolist():
                if k <= t_star:
                    offset = 0.004 if k == 1 else 0.0044   # a tiny colour shift: D keeps it, the gradients do not see it
                    out.append(D(x0, torch.tensor([t_star - k]))[0] + offset)
                elif k == t_star + 2:
                    out.append(x0[0])                                                       # sharp, inconsistent
                else:
                    out.append((x0 + 1.5 * (x0 - D(x0, torch.tensor([1]))))[0])             # over-sharpened
            return torch.stack(out).float()

        run.R = R
        run.degrade = lambda x, t, ctx=None, batch_size=64: D(x.double(), D.as_t(t, x)).float()  # unrounded D
        assert int(estimate_t(run, y, consistent=1.25)[0]) == t_star
        assert int(estimate_t(run, y, consistent=1.0)[0]) == 1     # consistency alone: the flat curve's minimum


@pytest.mark.parametrize("value, words", [("0.5", "at least 1"), ("nan", "finite"), ("1000", "at most 100")])
def test_auto_tolerance_out_of_range_is_one_line_and_writes_nothing(blur_run, photos, tmp_path, capsys, value, words):
    out = tmp_path / "r"
    assert main(["restore", str(blur_run), "--input", str(photos / "p0.png"), "--auto-tolerance", value,
                 "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--auto-tolerance" in err[0] and words in err[0]
    assert not out.exists()


def test_auto_tolerance_reaches_estimate_t(blur_run, photos, tmp_path, monkeypatch):
    import colddiff.restoration as restoration

    seen = []
    real = restoration.estimate_t
    monkeypatch.setattr(restoration, "estimate_t", lambda *a, **kw: seen.append(kw["consistent"]) or real(*a, **kw))
    assert main(["restore", str(blur_run), "--input", str(photos / "p0.png"), "--auto-tolerance", "1.25",
                 "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    assert seen and set(seen) == {1.25}
