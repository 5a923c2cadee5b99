"""What every built-in data set tells and does: the ``Source`` base class."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Optional, Sequence

from torch.utils.data import Dataset

from ..download import Check, DownloadError, FileSpec
from ..errors import InputError
from .common import MAX_UPSAMPLE, Location, Status, check_image_size, download_dir, locations, show


class Source(ABC):
    """A built-in data set: its facts (sizes, licence, files, checksums), where its files are
    looked for, and how to load, verify and download it.  Subclasses fill in the facts and
    ``find``/``load``; the registry in ``colddiff.data`` is a plain dict of instances."""

    name: str = ""
    title: str = ""
    licence: str = ""
    short_licence: str = ""                      # for the table of `colddiff data list`
    hub_id: str = ""                             # its id on the Hugging Face Hub (an exported model card's datasets)
    hub_licence: str = ""                        # the Hub's licence identifier ("" = none stated: a card says "other")
    homepage: str = ""
    native: tuple[int, int, int] = (1, 28, 28)   # (C, H, W) as stored
    counts: dict[str, int] = {}                  # split -> official number of images
    classes: tuple[str, ...] = ()
    default_size: Optional[int] = None           # image_size when None is asked for
    aliases: tuple[str, ...] = ()                # sub-folders of root also searched
    mirrors: tuple[str, ...] = ()                # base URLs of the official downloads
    citation: str = ""

    # -- facts
    def splits(self) -> tuple[str, ...]:
        return tuple(self.counts)

    def system_dirs(self) -> Sequence[Path]:
        return ()

    def size_rule(self) -> str:
        return f"any from 4 to {MAX_UPSAMPLE * self.native[1]} (resized; default {self.native[1]}, as stored)"

    def check_size(self, image_size) -> Optional[int]:
        largest = MAX_UPSAMPLE * self.native[1]
        return check_image_size(self.name, image_size, largest=largest,
                                why=f"{MAX_UPSAMPLE}x its {self.native[1]}px images")

    def files(self, split: str) -> list[FileSpec]:
        """The files a split needs (names as published, with checksums)."""
        return []

    def wanted(self, split: str) -> str:
        """The files of a split, in words, for messages."""
        names = [f.name for f in self.files(split)]
        return " and ".join(names) if len(names) <= 2 else ", ".join(names[:-1]) + " and " + names[-1]

    def locations(self, root=None) -> list[Location]:
        return locations(self.name, root, self.aliases, self.system_dirs())

    # -- finding, loading
    @abstractmethod
    def find(self, split: str, root=None) -> Optional[Path]:
        """The first folder that holds everything ``split`` needs, or None."""

    def status(self, root=None) -> Status:
        return Status({s: self.find(s, root) for s in self.splits()})

    @abstractmethod
    def load(self, split: str, root=None, image_size: Optional[int] = None, channels: Optional[int] = None,
             download: bool = True) -> Dataset:
        """The split as a Dataset of (image, label) pairs in [-1, 1]."""

    def fetch_split(self, split: str, root=None, progress: Optional[bool] = None) -> Path:
        """Download what ``split`` needs into the download folder; return that folder."""
        raise DownloadError(f"data set {self.name!r} has no direct download")

    def fetch(self, root=None, progress: Optional[bool] = True) -> Path:
        """Download every split that is not here yet; return the folder that holds them."""
        for split in self.splits():
            if self.find(split, root) is None:
                self.fetch_split(split, root, progress)
        found = self.status(root).where
        return found[0] if found else download_dir(self.name, root)

    def find_or_fetch(self, split: str, root=None, download: bool = True) -> Path:
        """The folder holding ``split``; downloads it if missing and allowed; else a clear error."""
        found = self.find(split, root)
        if found is not None:
            return found
        if download and self.mirrors:
            try:
                self.fetch_split(split, root, progress=None)
            except InputError as e:
                raise InputError(self.missing(split, root, reason=str(e))) from None
            found = self.find(split, root)
            if found is not None:
                return found
        raise InputError(self.missing(split, root, download=download))

    @abstractmethod
    def verify(self, root=None) -> list[Check]:
        """Check the files that are here against their published checksums."""

    # -- words
    def placement(self, root=None) -> str:
        """How to get the files and where to put them (one sentence)."""
        return f"put them in {show(download_dir(self.name, root))}"

    def missing(self, split: str, root=None, reason: Optional[str] = None, download: bool = True) -> str:
        """The one-line message for a split that is not here: what, where looked, what to do."""
        looked = ", ".join(dict.fromkeys(show(loc.path) for loc in self.locations(root)))
        msg = f"data set {self.name!r} ({split} split) is missing: {self.wanted(split)} not found in {looked}"
        if reason:
            msg += f"; the download failed ({reason})"
        elif self.mirrors and not download:
            msg += f"; download=False, so nothing was downloaded (`colddiff data download {self.name}` fetches it)"
        if not self.mirrors and reason is None:
            msg += "; it cannot be downloaded automatically"
        msg += f"; {self.placement(root)}, then check with `colddiff data verify {self.name}`"
        msg += f" (details: `colddiff data info {self.name}`)"
        return msg

    def describe(self, root=None) -> list[str]:
        """Lines of ``colddiff data info NAME``."""
        st = self.status(root)
        lines = [f"{self.name}: {self.title}",
                 f"  status:   {st.state}" + (f" ({st.note})" if st.note else "")]
        for split, where in st.found.items():
            lines.append(f"            {split:<6} {'found in ' + show(where) if where else 'missing'}")
        c, h, w = self.native
        lines += [
            f"  images:   {c}x{h}x{w} as stored; image_size: {self.size_rule()}",
            "  splits:   " + ", ".join(f"{s} {n:,}" for s, n in self.counts.items()) + " images (official)",
        ]
        if self.classes:
            lines.append(f"  labels:   {len(self.classes)} classes: {', '.join(self.classes)}")
        else:
            lines.append("  labels:   none (-1)")
        lines += [f"  licence:  {self.licence}", f"  source:   {self.homepage}"]
        if self.citation:
            lines.append(f"  cite:     {self.citation}")
        lines.append("  files:")
        used: dict[str, tuple[FileSpec, list[str]]] = {}
        for split in self.splits():
            for f in self.files(split):
                used.setdefault(f.name, (f, []))[1].append(split)
        for f, splits in used.values():
            sums = "; ".join(f.sums()) or "no published checksum"
            which = "all splits" if len(splits) == len(self.splits()) else ", ".join(splits)
            lines.append(f"    {f.name:<28} ({which}) {sums}")
        lines.append("  looked for in (first match wins):")
        for loc in self.locations(root):
            lines.append(f"    {show(loc.path)}  [{loc.why}]")
        lines += self.how_to_get(root)
        lines.append(f"  use:      colddiff.data.load({self.name!r}, split={self.splits()[0]!r}, root=None, "
                     f"image_size={self.default_size})")
        return lines

    def how_to_get(self, root=None) -> list[str]:
        lines = ["  get it:"]
        if self.mirrors:
            lines.append(f"    colddiff data download {self.name}" + (f" --root {root}" if root else "")
                         + "   (loading it also downloads it when missing)")
            lines += [f"    mirror: {m}" for m in self.mirrors]
            lines.append(f"    or by hand: {self.placement(root)}")
        else:
            lines.append(f"    {self.placement(root)}")
        lines.append(f"    then: colddiff data verify {self.name}" + (f" --root {root}" if root else ""))
        return lines
