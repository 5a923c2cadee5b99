"""Provenance of the paper presets: the experiment each reproduces, the authors' setting, and every
remaining difference, with the files of the authors' code (arpitbansal297/Cold-Diffusion-Models)
each fact was read from.

``colddiff presets --show NAME`` prints a preset's entry under its TOML; the docs page "Paper presets:
provenance" (docs/paper-presets.md) is generated from this table when the site is built.  Where the paper's text and the authors' code
disagree the presets follow the code and the entry names both.  Facts only: no code or text
of the authors' repository is copied here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

# authors' repository files (paths inside arpitbansal297/Cold-Diffusion-Models)
BLUR_CODE = "deblurring-diffusion-pytorch/deblurring_diffusion_pytorch/deblurring_diffusion_pytorch.py"
FADE_CODE = "defading-diffusion-pytorch/defading_diffusion_pytorch/defading_diffusion_gaussian.py"
FADE_GEN_CODE = "defading-generation-diffusion-pytorch/defading_diffusion_pytorch/defading_diffusion_pytorch.py"
RES_CODE = "resolution-diffusion-pytorch/resolution_diffusion_pytorch/resolution_diffusion_pytorch.py"
SNOW_CODE = "snowification/diffusion/forward_process_impl.py"
SNOW_DATA = "snowification/diffusion/get_dataset.py"
DECOLOR_CODE = "decolor-diffusion/diffusion/forward_process_impl.py"
NOISE_CODE = "denoising-diffusion-pytorch/denoising_diffusion_pytorch/denoising_diffusion_pytorch.py"
MIX_CODE = "demixing-diffusion-pytorch/demixing_diffusion_pytorch/demixing_diffusion_pytorch.py"
README = "README.md"
CREATE_DATA = "create_data.py"

# ---- differences shared by several presets (each is a deliberate, named deviation)
# the files of the authors' networks of the snow and colourisation experiments (see AUTHORS_NETWORK below)
SNOW_NET_CODE = ["snowification/diffusion/model/get_model.py", "snowification/diffusion/model/unet_convnext.py"]
DECOLOR_NET_CODE = ["decolor-diffusion/diffusion/model/get_model.py", "decolor-diffusion/diffusion/model/unet_convnext.py"]
CELEBA_DATA = ("data: the authors' CelebA is CelebA-HQ at 128 px with the first 90% of the files for training "
               f"({CREATE_DATA}); colddiff's celeba is img_align_celeba centre-cropped to 128 with the official "
               "split (point data.name at folder:PATH to train on CelebA-HQ files)")
RESIZE_SOURCE = ("augmentation: resize-crop enlarges the already resized n-px image by 1.12 (bilinear), the authors "
                 "resize the original file to 1.12 n")
MNIST_FRAME = ("data: MNIST's 28 px digits are resized to 32 px; the authors' loader for this experiment resizes to "
               "35 px and then crops 32 (the digit ends up 12% larger)")
QUANT = ("8-bit quantisation of masked training inputs and of x_T: colddiff rounds to the nearest level, the "
         "authors' --discrete truncates with int(), which floors every non-integer value, so their images sit on "
         "average half a level (1/510 in [0, 1]) below ours; neither rounds inside the sampler's D calls")
RANDOM_CENTRE = ("random mask centres: colddiff draws a pixel 0..n-1 per axis, the authors' window offsets put the "
                 "centre at -1..n-1")
GEN_DISCRETE = ("--discrete (the last step gives the channel means, every training input is put on 8-bit levels) "
                "is followed with discrete=true, except that colddiff rounds to the nearest level where the authors "
                "truncate with int(), which floors every non-integer value (on average half a level lower); neither "
                "rounds inside the sampler or the generation start")
STEPS_700K = "training steps: 700k (the authors' --train_steps default)"
# ---- evaluation (colddiff evaluate --protocol paper; read in each family's fid_distance_decrease_from_manifold)
EVAL_RESIZE = ("evaluation: --protocol paper enlarges the n-px test image 1.12x and centre-crops it, the authors' "
               "test loader (Dataset: Resize(1.12 n) + CenterCrop(n)) resizes the original file")
EVAL_FID = ("evaluation: FID uses Inception-v3 pool features when its weights file is in place (`colddiff weights "
            "info`), else the offline classifier's features (labelled, on another scale); the authors use "
            "pytorch-fid's Inception on all test images but the first")
ROWS_LAST = ("rows: the paper's text calls Algorithm 2's output 'sampled', the authors' test script records the last "
             "network prediction R(x_1, 1); --protocol paper reports theirs as 'sampled' beside Algorithm 2's x_0, "
             "--protocol colddiff reports x_0")
ROWS_FIRST = ("rows: the authors' 'degraded' images are x_{T-1}, the image after the first update, not x_T; "
              "--protocol paper reports both and names which is theirs")
SHIFTED = ("sampler: the authors' snowification/decolor code (sample_one_step, x0_step_down) updates one step early, "
           "x_{s-1} = x_s - D(x0_hat, s-1) + D(x0_hat, s-2), its last step returning x_1; colddiff's default is the "
           "paper's Algorithm 2, the authors' variant is the sampler authors-shifted (evaluate --paper-sampler "
           "authors-shifted)")
SNOW_EVAL = "snowification/diffusion/diffusion.py"
DECOLOR_EVAL = "decolor-diffusion/diffusion/diffusion.py"


@dataclass
class Provenance:
    experiment: str                 # paper section / table
    authors: str                    # the authors' setting, as their code runs it
    files: List[str]                # files of the authors' code the facts come from
    differences: List[str] = field(default_factory=list)   # every remaining difference, with its reason
    network: str = ""               # the authors' network for the experiment (AUTHORS_NETWORK)

    def lines(self) -> List[str]:
        out = [f"experiment: {self.experiment}", f"the authors' setting: {self.authors}"]
        out += [f"the authors' network: {self.network}"] if self.network else []
        out += ["checked in arpitbansal297/Cold-Diffusion-Models: " + ", ".join(self.files)]
        out += ["remaining differences:"] + [f"  - {d}" for d in self.differences] if self.differences \
            else ["remaining differences: none"]
        return out


COMMON_TRAIN = "Adam lr 2e-5, batch {b}, 2 accumulated micro-batches, L1 loss, EMA 0.995 every 10 steps from step 2000"

PROVENANCE: Dict[str, Provenance] = {
    "mnist-blur": Provenance(
        "Sec. 4.1, Table 1 (MNIST deblurring)",
        "T=20, 11x11 Gaussian, sigma 7 at every step (--blur_routine Constant), circular padding (get_conv's "
        "default), MNIST at 32 px, Resize(35)+RandomCrop(32)+RandomHorizontalFlip (Dataset_Aug1), "
        + COMMON_TRAIN.format(b=32) + ", 700k steps",
        [README, "deblurring-diffusion-pytorch/mnist_train.py", "deblurring-diffusion-pytorch/mnist_test.py",
         BLUR_CODE],
        ["paper text: T=40 for MNIST; the code's README runs T=20 (followed)",
         "data: MNIST 28 px resized to 32 px, then the authors' random 1.12 enlargement and crop as augmentation",
         RESIZE_SOURCE, EVAL_RESIZE, EVAL_FID]),
    "cifar10-blur": Provenance(
        "Sec. 4.1, Table 1 (CIFAR-10 deblurring)",
        "T=50, 11x11, sigma_i = 0.35 + i/100 for step index i = 0..T-1 (Special_6_routine), reflect padding, "
        "Resize(35)+RandomCrop(32)+flip, " + COMMON_TRAIN.format(b=32) + ", 700k steps",
        [README, "deblurring-diffusion-pytorch/cifar10_train.py", "deblurring-diffusion-pytorch/cifar10_test.py",
         BLUR_CODE, "deblurring-diffusion-pytorch/deblurring_diffusion_pytorch/Model2.py"],
        ["paper text: sigma_t = 0.35 + 0.01 t; the code starts at i = 0, i.e. sigma_t = 0.35 + 0.01 (t-1) (followed)",
         RESIZE_SOURCE, EVAL_RESIZE, EVAL_FID]),
    "celeba-blur": Provenance(
        "Sec. 4.1, Table 1 (CelebA deblurring)",
        "T=200, 15x15, sigma_i = exp(0.01 i), i = 0..T-1 (Exponential_reflect, --blur_std 0.01), reflect padding, "
        "CelebA-HQ 128 resized to 143 + RandomCrop(128) + flip, " + COMMON_TRAIN.format(b=32) + ", 700k steps",
        [README, "deblurring-diffusion-pytorch/celebA_128.py", BLUR_CODE, CREATE_DATA],
        ["paper text: sigma_t = exp(0.01 t); the code starts at i = 0, i.e. exp(0.01 (t-1)) (followed)",
         CELEBA_DATA, RESIZE_SOURCE, EVAL_RESIZE, EVAL_FID]),
    "mnist-inpaint": Provenance(
        "Sec. 4.2, Table 2 (MNIST inpainting)",
        "T=50, Gaussian masks of std 0.1 (i + 11) for i = 0..T-1 (--kernel_std 0.1; mnist_train.py does not pass "
        "initial_mask, so the class default 11 applies), a random centre per image (Random_Incremental), --discrete "
        "8-bit images, MNIST at 32 px (Resize(32)+CenterCrop, no augmentation), " + COMMON_TRAIN.format(b=32)
        + ", 700k steps",
        [README, "defading-diffusion-pytorch/mnist_train.py", "defading-diffusion-pytorch/mnist_test.py",
         "defading-diffusion-pytorch/inpainting_paper_train.sh", FADE_CODE],
        ["paper text: beta_1 = 1, +0.1 per step, 60k steps, batch 64; the training code: widths 1.1, 1.2, ..., "
         "batch 32, 700k steps (followed)", "the README's MNIST inpainting test command cannot run: it passes "
         "--initial_mask 1 and --image_size 28, options mnist_test.py does not have (argparse refuses them); "
         "colddiff evaluates the trained setting", QUANT, RANDOM_CENTRE, ROWS_FIRST, ROWS_LAST,
         EVAL_FID]),
    "cifar10-inpaint": Provenance(
        "Sec. 4.2, Table 2 (CIFAR-10 inpainting)",
        "T=50, masks of std 0.1 (i + 11), random centre, --discrete, RandomCrop(32, padding=4)+flip (DatasetCifar10), "
        + COMMON_TRAIN.format(b=32) + ", 700k steps",
        [README, "defading-diffusion-pytorch/cifar10_train.py", "defading-diffusion-pytorch/cifar10_test.py",
         "defading-diffusion-pytorch/inpainting_paper_train.sh", FADE_CODE,
         "defading-diffusion-pytorch/defading_diffusion_pytorch/new_model.py"],
        ["paper text: beta_1 = 1, 60k steps, batch 64; the code: widths 1.1, 1.2, ..., batch 32, 700k steps "
         "(followed)", QUANT, RANDOM_CENTRE, ROWS_FIRST, ROWS_LAST, EVAL_FID]),
    "celeba-inpaint": Provenance(
        "Sec. 4.2, Table 2 (CelebA inpainting)",
        "T=100, centred masks of std 0.2 (i + 1) for i = 0..T-1 (--fade_routine Incremental --kernel_std 0.2 "
        "--initial_mask 1), no quantisation, centre at pixel 63 of 128, Resize(143)+RandomCrop(128)+flip "
        "(--dataset celebA), Adam lr 2e-5, batch 100, 2 accumulated micro-batches, EMA 0.995 every 10 steps from "
        "step 2000, 350k steps",
        [README, "defading-diffusion-pytorch/celebA_train.py", "defading-diffusion-pytorch/inpainting_paper_train.sh",
         "defading-diffusion-pytorch/inpainting_test_paper.sh", FADE_CODE],
        ["mask width: the centred runs of inpainting_paper_train.sh (--fade_routine Incremental --kernel_std 0.2 "
         "--initial_mask 1, 350k steps) and the README's test command use --initial_mask 1 (widths 0.2 t, "
         "followed: 47% of a 128 px image masked at t=T); the README's training command omits it, which would give "
         "celebA_train.py's default 11 (widths 0.2 (t+10)); bigger_mask_train.sh holds other runs (random centres, "
         "--initial_mask 11 and 21)", "paper text: beta_1 = 1, +0.1 per step, 60k steps, batch 64; the scripts: "
         "batch 100, 350k steps (followed)",
         CELEBA_DATA, RESIZE_SOURCE, ROWS_FIRST, ROWS_LAST, EVAL_FID]),
    "mnist-sr": Provenance(
        "Sec. 4.3 (MNIST super-resolution)",
        "T=3 halvings of a 32 px image (--resolution_routine Incremental_factor_2: bicubic down without "
        "antialiasing, nearest-exact up; downsample=bicubic), MNIST through Resize(35)+"
        "CenterCrop(32), no random augmentation, " + COMMON_TRAIN.format(b=32) + ", 700k steps",
        [README, "resolution-diffusion-pytorch/mnist_train.py", RES_CODE],
        [MNIST_FRAME, ROWS_LAST, EVAL_RESIZE, EVAL_FID]),
    "cifar10-sr": Provenance(
        "Sec. 4.3 (CIFAR-10 super-resolution)",
        "T=3 bicubic halvings (32 -> 4 px, Incremental_factor_2), Resize(35)+RandomCrop(32)+flip, "
        + COMMON_TRAIN.format(b=32) + ", 700k steps",
        [README, "resolution-diffusion-pytorch/cifar10_train.py", RES_CODE,
         "resolution-diffusion-pytorch/resolution_diffusion_pytorch/Model2.py"],
        [RESIZE_SOURCE, ROWS_LAST, EVAL_RESIZE, EVAL_FID]),
    "celeba-sr": Provenance(
        "Sec. 4.3 (CelebA super-resolution)",
        "T=4 bicubic halvings (128 -> 8 px, Incremental_factor_2), Resize(143)+RandomCrop(128)+flip, "
        + COMMON_TRAIN.format(b=32)
        + ", 700k steps",
        [README, "resolution-diffusion-pytorch/celebA_128.py", RES_CODE],
        [CELEBA_DATA, RESIZE_SOURCE, ROWS_LAST, EVAL_RESIZE, EVAL_FID]),
    "cifar10-snow": Provenance(
        "Sec. 4.4 (CIFAR-10 desnowification)",
        "T=200, the authors' snow level 3 (field N(0.55, 0.3) zoomed 2.5x, threshold 1.15 -> 0.7, 11-tap motion "
        "blur sigma 0.05 -> 16, horizontal or vertical), --random_snow --fix_brightness (x_t = clip(x0 + S + "
        "rot180 S)), CIFAR-10 centre crop only (no augmentation), " + COMMON_TRAIN.format(b=32) + ", 700k steps",
        [README, SNOW_CODE, "snowification/train.py", SNOW_DATA, SNOW_EVAL] + SNOW_NET_CODE,
        ["random snow: one field (and direction) per trajectory, per image; the authors draw one per training batch "
         "and share it across the batch (a per-image draw gives the network more varied snow at the same level)",
         SHIFTED, ROWS_FIRST, ROWS_LAST, EVAL_FID]),
    "celeba-snow": Provenance(
        "Sec. 4.4 (CelebA desnowification)",
        "T=200, the authors' snow level 4 (threshold 1.15 -> 0.55, motion blur sigma 0.05 -> 20), --random_snow "
        "--fix_brightness, CelebA 128 centre crop only, Adam lr 2e-5, batch 16 (train.py: 16 above 64 px), "
        "2 accumulated micro-batches, EMA 0.995 every 10 steps from step 2000, 700k steps",
        [README, SNOW_CODE, "snowification/train.py", SNOW_DATA, SNOW_EVAL] + SNOW_NET_CODE,
        ["random snow: one field per image rather than per batch (see cifar10-snow)", CELEBA_DATA,
         SHIFTED, ROWS_FIRST, ROWS_LAST, EVAL_FID]),
    "cifar10-desaturate": Provenance(
        "Sec. 4.5 (CIFAR-10 colourisation)",
        "T=20, --decolor_routine Linear --decolor_total_remove: colour share 1 - t/T towards the plain channel mean "
        "(a 1x1 convolution with weights 1/3), no augmentation, " + COMMON_TRAIN.format(b=32) + ", 700k steps",
        [README, DECOLOR_CODE, "decolor-diffusion/train.py", "decolor-diffusion/diffusion/get_dataset.py",
         DECOLOR_EVAL] + DECOLOR_NET_CODE,
        [SHIFTED, ROWS_FIRST, ROWS_LAST, EVAL_FID]),
    "celeba-desaturate": Provenance(
        "Sec. 4.5 / the authors' README (CelebA colourisation)",
        "T=20, Linear with total removal towards the channel mean, CelebA 128 centre crop only, batch 16, "
        "2 accumulated micro-batches, lr 2e-5, EMA 0.995 every 10 steps from step 2000, 700k steps",
        [README, DECOLOR_CODE, "decolor-diffusion/train.py", "decolor-diffusion/diffusion/get_dataset.py",
         "snowification/training_script.sh", DECOLOR_EVAL] + DECOLOR_NET_CODE,
        ["image size: the authors' README command trains at 128 px (get_image_size), batch 16 (followed); their "
         "training script (snowification/training_script.sh) trains CelebA colourisation with --resolution 64, which "
         "makes train.py use batch 32", CELEBA_DATA, SHIFTED, ROWS_FIRST, ROWS_LAST, EVAL_FID]),
    "celeba-blur-gen": Provenance(
        "Sec. 5 (CelebA generation by deblurring; broken symmetry FID 49.45)",
        "--discrete, T=300, 27x27, sigma_i = exp(0.01 i) (Exponential), circular padding, Resize(143)+RandomCrop(128)"
        "+flip, " + COMMON_TRAIN.format(b=32) + ", 700k steps; sampling from a 1-component GMM of channel means "
        "(+ noise 0.002 for broken symmetry)",
        [README, "deblurring-diffusion-pytorch/celebA_128.py", BLUR_CODE],
        [GEN_DISCRETE, CELEBA_DATA, RESIZE_SOURCE]),
    "afhq-blur-gen": Provenance(
        "Sec. 5 (AFHQ generation by deblurring; FID 54.68)",
        "as celeba-blur-gen on AFHQ 512 px files resized to 143 + RandomCrop(128) + flip",
        [README, "deblurring-diffusion-pytorch/AFHQ_128.py", BLUR_CODE],
        [GEN_DISCRETE, RESIZE_SOURCE]),
    "celeba-mask-gen": Provenance(
        "Sec. 5 (CelebA generation by unmasking)",
        "--reverse --kernel_std 0.05 --initial_mask 1 --time_steps 750: visible share 1 - prod_{j <= T-t} z_j with "
        "mask widths 0.05 j, centred at pixel 63, the end state a random solid colour uniform in [-0.5, 0.5] per "
        "channel, no quantisation, Resize(143)+RandomCrop(128)+flip, " + COMMON_TRAIN.format(b=32)
        + ", 700k steps",
        [README, "defading-generation-diffusion-pytorch/celebA_128.py", FADE_GEN_CODE],
        [CELEBA_DATA, RESIZE_SOURCE]),
    "celeba-animorph": Provenance(
        "Sec. 5 (animorphosis: CelebA faces from AFHQ animals)",
        "T=200, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) z with the cosine schedule and z an AFHQ image, both data "
        "sets Resize(143)+RandomCrop(128)+flip, " + COMMON_TRAIN.format(b=32) + ", 700k steps",
        [README, "demixing-diffusion-pytorch/AFHQ_128_to_celebA_128.py", MIX_CODE],
        [CELEBA_DATA, RESIZE_SOURCE,
         "partner images are not augmented (the authors flip and crop the AFHQ partners too)"]),
    "celeba-noise": Provenance(
        "Sec. 5 (hot diffusion baseline on CelebA; DDIM-style FID 23.11)",
        "T=200, cosine schedule (s = 0.008, beta clipped at 0.999), Resize(143)+RandomCrop(128)+flip, "
        + COMMON_TRAIN.format(b=32) + ", 700k steps",
        [README, "denoising-diffusion-pytorch/celebA_noise_128.py", NOISE_CODE],
        [CELEBA_DATA, RESIZE_SOURCE]),
    "afhq-noise": Provenance(
        "Sec. 5 (hot diffusion baseline on AFHQ; DDIM-style FID 20.59)",
        "T=200, cosine schedule, AFHQ resized to 143 + RandomCrop(128) + flip, " + COMMON_TRAIN.format(b=32)
        + ", 700k steps",
        [README, "denoising-diffusion-pytorch/AFHQ_noise_128.py", NOISE_CODE],
        [RESIZE_SOURCE]),
}

# the network each experiment's train script builds, and colddiff's model.arch that is the same network
UNET = ("their ConvNeXt Unet (lucidrains' 2022 U-Net), dim 64, multipliers 1-2-4-8, "
        f"{BLUR_CODE} and its copies in the defading, defading-generation, demixing, denoising and resolution "
        "folders (identical but for spacing); colddiff trains it as model.arch = "
        "lucidrains-convnext: the same layers and parameter names, their checkpoints give their outputs")
AUTHORS_NETWORK: Dict[str, str] = {name: UNET for name in (
    "mnist-blur", "celeba-blur", "mnist-inpaint", "celeba-inpaint", "mnist-sr", "celeba-sr", "celeba-blur-gen",
    "afhq-blur-gen", "celeba-mask-gen", "celeba-animorph", "celeba-noise", "afhq-noise")}
DDPM = ("their DDPM Model (Ho et al.'s U-Net), ch 128, multipliers 1-2-2-2, 2 residual blocks per level, attention at "
        "16 px, dropout 0.1, as the cifar10_train.py of the deblurring, defading and resolution folders build it; the "
        "class is Model2.py of the deblurring and resolution folders and new_model.py of the defading folder "
        "(identical but for spacing); colddiff trains it as model.arch = ddpm: the same layers and module names, "
        "their checkpoints give their outputs")
CONVNEXT_SNOW = ("their UnetConvNext (get_model: dim 64, multipliers 1-2-4-8), snowification/diffusion/model/"
                 "unet_convnext.py and the identical file in decolor-diffusion: their Unet class plus an "
                 "output_mean_scale option that get_model never passes; colddiff trains it as model.arch = "
                 "convnext-snow, the lucidrains-convnext network under the name of this class")
AUTHORS_NETWORK.update({name: DDPM for name in ("cifar10-blur", "cifar10-inpaint", "cifar10-sr")})
AUTHORS_NETWORK.update({name: CONVNEXT_SNOW for name in ("cifar10-snow", "celeba-snow", "cifar10-desaturate",
                                                           "celeba-desaturate")})
for _name, _net in AUTHORS_NETWORK.items():
    PROVENANCE[_name].network = _net


def provenance(name: str):
    """The provenance of paper preset ``name``, or None for presets that are not paper experiments."""
    return PROVENANCE.get(name)


# ---------------------------------------------------------------------------- the authors' test scripts
@dataclass(frozen=True)
class AuthorsTest:
    """How the authors' test script for a degradation family evaluates it (``evaluate --protocol paper``),
    read in each family's ``fid_distance_decrease_from_manifold``."""

    enlarge: bool = False         # test images enlarged 1.12x and centre-cropped (their blur and SR loaders)
    degraded_row: str = "x_t"     # their "degraded" images: x_t, or "first_update" (the image after the first update)
    sampled_row: str = "x_0"      # their "sampled" images: Algorithm 2's x_0, or "last_prediction" (R(x_1, 1))


_LAST = AuthorsTest(degraded_row="first_update", sampled_row="last_prediction")
AUTHORS_TESTS: Dict[str, AuthorsTest] = {     # family -> protocol (the files: BLUR_CODE, RES_CODE, FADE_CODE,
    "blur": AuthorsTest(enlarge=True),        # SNOW_EVAL, DECOLOR_EVAL above)
    "resolution": AuthorsTest(enlarge=True, sampled_row="last_prediction"),
    "mask": _LAST,
    "snow": _LAST, "snow-c": _LAST,
    "desaturate": _LAST,
}


def authors_test(family: str) -> AuthorsTest:
    """The authors' test protocol for degradation ``family``; a family they did not test (noise, animorph,
    a plug-in) is evaluated as the paper's text describes (x_t and Algorithm 2's x_0, images as they are)."""
    return AUTHORS_TESTS.get(family, AuthorsTest())


# ---------------------------------------------------------------------------- the paper's numbers
PAPER = "Bansal et al., Cold Diffusion, arXiv 2208.09392 (NeurIPS 2023)"


@dataclass
class PaperResults:
    """The numbers the paper reports for one preset, row -> {metric: value}, with where they come from.

    Rows are the paper's: ``degraded``, ``sampled`` (Algorithm 2 in the paper's text; in the authors'
    inpainting, super-resolution, snow and colourisation scripts the last network prediction) and
    ``direct``.  A metric the paper gives but we have not checked against it is left out rather than
    guessed; ``source`` says which table and which values are which."""

    source: str
    rows: Dict[str, Dict[str, float]]


# Table 1 (deblurring) and Table 2 (inpainting): FID sampled / direct as the paper reports them.  The SSIM
# and RMSE of MNIST and CIFAR-10 deblurring are the values recorded in the project's paper notes, which
# flag them "as we recall them": they are kept, marked in ``source``, so a reader can see what they are.
_T1 = f"{PAPER}, Table 1 (FID; SSIM/RMSE for MNIST and CIFAR-10 as recorded in the project's notes, unverified)"
_T2 = f"{PAPER}, Table 2 (FID)"
PAPER_RESULTS: Dict[str, PaperResults] = {
    "mnist-blur": PaperResults(_T1, {"degraded": {"ssim": 0.287, "rmse": 0.287},
                                     "sampled": {"fid": 4.69, "ssim": 0.718, "rmse": 0.154},
                                     "direct": {"fid": 5.10, "ssim": 0.757, "rmse": 0.142}}),
    "cifar10-blur": PaperResults(_T1, {"degraded": {"ssim": 0.315, "rmse": 0.136},
                                       "sampled": {"fid": 80.08, "ssim": 0.773, "rmse": 0.075},
                                       "direct": {"fid": 83.69, "ssim": 0.775, "rmse": 0.071}}),
    "celeba-blur": PaperResults(_T1, {"sampled": {"fid": 26.14}, "direct": {"fid": 36.37}}),
    "mnist-inpaint": PaperResults(_T2, {"sampled": {"fid": 1.61}, "direct": {"fid": 2.24}}),
    "cifar10-inpaint": PaperResults(_T2, {"sampled": {"fid": 8.92}, "direct": {"fid": 9.97}}),
    "celeba-inpaint": PaperResults(_T2, {"sampled": {"fid": 5.73}, "direct": {"fid": 7.74}}),
    "celeba-blur-gen": PaperResults(f"{PAPER}, Sec. 5 (blur generation, broken symmetry)",
                                    {"sampled": {"fid": 49.45}}),
    "afhq-blur-gen": PaperResults(f"{PAPER}, Sec. 5 (blur generation, broken symmetry)",
                                  {"sampled": {"fid": 54.68}}),
    "celeba-noise": PaperResults(f"{PAPER}, Sec. 5 (hot diffusion, DDIM-style sampling)", {"sampled": {"fid": 23.11}}),
    "afhq-noise": PaperResults(f"{PAPER}, Sec. 5 (hot diffusion, DDIM-style sampling)", {"sampled": {"fid": 20.59}}),
}


def paper_results(name: str):
    """The paper's numbers for preset ``name`` (None when the paper reports none we hold)."""
    return PAPER_RESULTS.get(name)
