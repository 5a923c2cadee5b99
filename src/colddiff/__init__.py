"""colddiff: Cold Diffusion (Bansal et al., 2022) — restoration and generation with arbitrary degradations."""
__version__ = "0.1.0"
