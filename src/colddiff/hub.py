"""The Hugging Face Hub: ``hf://owner/name[@revision]`` resolved to a local model folder, and pushing one.

huggingface_hub is an optional package (in the ``demo`` extra); without it both say how to
install it.  The folders are those written by ``colddiff export`` (:mod:`colddiff.export`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Tuple

from . import __version__, extras
from .checkpoint import CONFIG, WEIGHTS, is_export
from .errors import ConfigError, InputError
from .outputs import MANIFEST

HF_PREFIX = "hf://"
HF_INSTALL = "pip install huggingface_hub (or pip install 'colddiff[demo]', which includes it)"
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
# the files a model needs (weights, configs, card, sample grid, evaluation tables, GMM fits)
MODEL_FILES = [WEIGHTS, CONFIG, "config.toml", "README.md", "samples.png", "*.png", "evaluation/*",
               "generation/*.json"]


def parse_hf(spec: str) -> Tuple[str, Optional[str]]:
    """``hf://owner/name[@revision]`` -> (repo id, revision or None)."""
    rest = spec[len(HF_PREFIX):].strip("/")
    repo, _, rev = rest.partition("@")
    if not REPO_ID.match(repo) or (_ and not rev):
        raise ConfigError(f"{spec!r} is not a Hub model address; write hf://owner/name or hf://owner/name@revision")
    return repo, rev or None


def _hub(needed_for: str, attr: str):
    """huggingface_hub, with ``attr`` (a missing, broken or too old package: one line, :mod:`colddiff.extras`)."""
    return extras.require("huggingface_hub", package="huggingface_hub", needed_for=needed_for, install=HF_INSTALL,
                          attrs=(attr,))


def resolve_hf(spec: str) -> Path:
    """The local folder of ``hf://owner/name[@revision]`` in huggingface_hub's cache (downloaded when missing).

    Only the files a model needs are fetched (:data:`MODEL_FILES`).  With ``HF_HUB_OFFLINE=1`` a
    cached copy is used without a network.
    """
    repo, rev = parse_hf(spec)
    hub = _hub("hf:// models", "snapshot_download")
    try:
        path = hub.snapshot_download(repo_id=repo, revision=rev, repo_type="model", allow_patterns=MODEL_FILES)
    except Exception as e:  # offline, unknown repo, private repo without a token, ...: one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InputError(f"cannot get {spec} from the Hugging Face Hub ({type(e).__name__}: {first}); check the "
                         "name and revision, your network, or `huggingface-cli login` for a private model") from None
    if not is_export(path):
        raise InputError(f"{spec} is not a colddiff model (no {WEIGHTS} and {CONFIG} in it); "
                         "colddiff loads folders written by `colddiff export`")
    return Path(path)


def check_push(repo_id: str) -> None:
    """One-line errors, before anything is written, when ``--push REPO_ID`` cannot work here: a repository id
    that is not owner/name, or no huggingface_hub package."""
    if not REPO_ID.match(repo_id or ""):
        raise ConfigError(f"--push takes a Hub repository id owner/name, got {repo_id!r}")
    _hub("--push", "HfApi")


def push(folder, repo_id: str, private: bool = False, message: Optional[str] = None) -> str:
    """Upload an exported folder to the Hub as model repository ``repo_id``; returns its URL."""
    check_push(repo_id)
    if not is_export(folder):
        raise InputError(f"{folder} is not an exported model folder (run `colddiff export RUN --out {folder}` first)")
    hub = _hub("--push", "HfApi")
    try:
        api = hub.HfApi()
        api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                          commit_message=message or f"colddiff {__version__} export",
                          ignore_patterns=[MANIFEST])  # the local ownership mark is not part of the model
    except Exception as e:  # no token, no network, no permission: one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InputError(f"upload to {repo_id} failed ({type(e).__name__}: {first}); log in with "
                         "`huggingface-cli login` (or set HF_TOKEN) and check the network") from None
    return f"https://huggingface.co/{repo_id}"


__all__ = ["HF_PREFIX", "parse_hf", "resolve_hf", "push", "check_push", "MODEL_FILES"]
