"""MkDocs hooks: the pages of the site that are generated from the code when it is built.

Registered in ``mkdocs.yml`` (``hooks: [docs/hooks.py]``).  Nothing here is copied by hand, so a new
command, option, preset or benchmark result shows up on the next ``mkdocs build``:

* ``index.md`` is README.md (its ``docs/...`` links made relative to the site).
* ``commands/NAME.md``, one page per sub-command of ``colddiff.cli.build_parser()``: the hand-written
  prose of ``docs/commands/NAME.md`` when that file exists (a title from the command's help line
  otherwise), followed by the command's ``--help`` (and its actions' ``--help``, for ``data`` and
  ``weights``) as argparse prints it.  ``commands/index.md`` lists them (``<!-- generated: commands -->``); the nav's "Commands"
  section is filled with them too.
* ``<!-- generated: provenance -->`` in a page becomes the provenance table of the paper presets
  (``colddiff.paper.PROVENANCE`` and each preset's configuration).
* ``<!-- generated: benchmark-results -->`` becomes one table per ``benchmarks/results/*.json``, drawn
  by the benchmark module's own ``format_table``; ``<!-- generated: benchmarks-readme -->`` becomes
  benchmarks/README.md (how to run them).
* Any page under docs/ that the nav of mkdocs.yml does not name is added under "More", so a new page
  is reachable before someone places it.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from collections import Counter
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

HELP_COLUMNS = "100"                     # argparse wraps --help to $COLUMNS: fixed, so builds are reproducible
PROVENANCE_MARK = "<!-- generated: provenance -->"
BENCHMARK_MARK = "<!-- generated: benchmark-results -->"
COMMANDS_MARK = "<!-- generated: commands -->"
BENCHMARKS_README_MARK = "<!-- generated: benchmarks-readme -->"
COMMANDS_SECTION = "Commands"
MORE_SECTION = "More"




def _use_checkout() -> None:
    """Import this checkout's package and benchmarks/, installed or not (MkDocs restores sys.path after
    loading a hook, so this runs when a page is generated, not at import)."""
    for p in (ROOT / "src", ROOT):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))


# ----------------------------------------------------------------------------- the command line

@lru_cache(maxsize=1)
def commands() -> List[Tuple[str, argparse.ArgumentParser, str]]:
    """Every sub-command of ``colddiff``: (name, its parser, its one-line help), in the CLI's order."""
    _use_checkout()
    from colddiff.cli import build_parser

    with _columns():
        parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    return [(name, p, helps.get(name, "")) for name, p in sub.choices.items()]


@contextmanager
def _columns():
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def help_blocks(name: str, parser: argparse.ArgumentParser) -> List[Tuple[str, str]]:
    """``colddiff NAME --help`` and, for commands with actions, each ``colddiff NAME ACTION --help``."""
    with _columns():
        out = [(f"colddiff {name} --help", parser.format_help())]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for act, p in action.choices.items():
                    out.append((f"colddiff {name} {act} --help", p.format_help()))
    return out


def command_page(name: str, parser: argparse.ArgumentParser, help_line: str, prose: Optional[str]) -> str:
    """A command's page: its prose (or a title from its help line), then its --help output."""
    text = prose.rstrip() if prose and prose.strip() else f"# `colddiff {name}` — {help_line}"
    parts = [text, "", "## Options", "",
             "Generated from the command's own `--help` when this site was built.", ""]
    for title, body in help_blocks(name, parser):
        parts += [f"`{title}`", "", "```text", body.rstrip(), "```", ""]
    return "\n".join(parts)


def commands_table() -> str:
    """Every command, linked to its page, with its one-line help."""
    rows = [f"| [`colddiff {name}`]({name}.md) | {_cell(help_line)} |" for name, _, help_line in commands()]
    return "\n".join(["| command | what it does |", "|---|---|", *rows, ""])


# ----------------------------------------------------------------------------- paper presets

def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _steps(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}"


def _lr(x: float) -> str:
    return re.sub(r"e-0*(\d)", r"e-\1", f"{x:g}")


def _ours(name: str) -> str:
    _use_checkout()
    try:                                  # the presets' own module, where the package has one
        from colddiff.presets import preset
    except ImportError:
        from colddiff.config import preset

    cfg = preset(name)
    d, data, tr = cfg.degradation, cfg.data, cfg.train
    deg = " ".join([f"`{d.name}` T={d.T}"] + [f"{k}={v}" for k, v in d.params.items()])
    aug = f"`{data.augment}`" if data.augment else "no augmentation"
    m = cfg.model
    net = f"; network `{getattr(m, 'arch', 'colddiff')}` dim {m.dim}, {'-'.join(map(str, m.dim_mults))}"
    return (f"{deg}; {data.name} {data.image_size} px, {aug}; batch {tr.batch_size}×{tr.grad_accum}, "
            f"lr {_lr(tr.lr)}, {_steps(tr.steps)} steps{net}")


# Short keys of the shared differences paper.py names; a constant not listed here is keyed by its own name
# (e.g. [EVAL_FID]), a difference repeated without a name by S1, S2, ...
SHARED_KEYS = {"CELEBA_DATA": "D1",
               "MNIST_FRAME": "D2", "RESIZE_SOURCE": "A1", "QUANT": "Q", "RANDOM_CENTRE": "C", "GEN_DISCRETE": "G"}


def shared_differences() -> Dict[str, str]:
    """Key -> text of every difference paper.py names as a shared one or that several paper presets have."""
    _use_checkout()
    from colddiff import paper

    counts = Counter(d for p in paper.PROVENANCE.values() for d in p.differences)
    named = {value: SHARED_KEYS.get(attr, attr) for attr, value in vars(paper).items()
             if attr.isupper() and isinstance(value, str)}
    out: Dict[str, str] = {}
    extra = 0
    for p in paper.PROVENANCE.values():
        for diff in p.differences:
            if (counts[diff] > 1 or diff in named) and diff not in out.values():
                key = named.get(diff)
                if key is None:
                    extra += 1
                    key = f"S{extra}"
                out[key] = diff
    return out


def provenance_markdown() -> str:
    """The provenance table of every paper preset, and the shared differences under it."""
    _use_checkout()
    from colddiff import paper

    keys = {text: key for key, text in shared_differences().items()}
    rows = ["| preset | paper | the authors' setting (files checked in `arpitbansal297/Cold-Diffusion-Models`) "
            "| ours | remaining differences |", "|---|---|---|---|---|"]
    for name, prov in paper.PROVENANCE.items():
        files = ", ".join(f"`{f}`" for f in prov.files)
        diffs = "; ".join(f"[{keys[d]}]" if d in keys else d for d in prov.differences) or "none"
        authors = prov.authors + (f"; network: {prov.network}" if getattr(prov, "network", "") else "")
        rows.append(f"| `{name}` | {_cell(prov.experiment)} | {_cell(authors)} ({files}) | {_cell(_ours(name))} "
                    f"| {_cell(diffs)} |")
    shared = [f"- **[{key}]** {text}." for key, text in shared_differences().items()]
    return "\n".join(rows + ["", "Shared differences (deliberate; the reason is part of each):", ""] + shared) + "\n"


# ----------------------------------------------------------------------------- benchmarks

def benchmark_results_markdown() -> str:
    """Each results file of benchmarks/results/, as its own benchmark module prints it (--markdown)."""
    _use_checkout()
    out = []
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        result = json.loads(path.read_text())
        module = result.get("benchmark") or result.get("meta", {}).get("benchmark") or path.stem.split("-")[0]
        table = importlib.import_module(f"benchmarks.{module}").format_table(result, markdown=True)
        out += [f"### {path.name}", "", f"`benchmarks/results/{path.name}`", "", table.rstrip(), ""]
    return "\n".join(out)


def benchmarks_readme_markdown() -> str:
    """benchmarks/README.md (how to run the benchmarks) without its title, its headings one level down."""
    text = (ROOT / "benchmarks" / "README.md").read_text()
    text = re.sub(r"\A# [^\n]*\n+", "", text)
    return re.sub(r"^(#{2,5}) ", r"#\1 ", text, flags=re.M)


# ----------------------------------------------------------------------------- README as the home page

def index_from_readme() -> str:
    text = (ROOT / "README.md").read_text()
    return re.sub(r"\]\(docs/", "](", text)


# ----------------------------------------------------------------------------- MkDocs events

def _nav_pages(nav) -> set:
    found = set()
    if isinstance(nav, str):
        found.add(nav)
    elif isinstance(nav, dict):
        for v in nav.values():
            found |= _nav_pages(v)
    elif isinstance(nav, list):
        for v in nav:
            found |= _nav_pages(v)
    return found


def on_config(config, **kwargs):
    """Fill the nav's Commands section with every command; add pages the nav does not name under More."""
    commands.cache_clear()                # `mkdocs serve` rebuilds: read the parser again
    nav = config.get("nav")
    if not nav:
        return config
    command_pages = [{f"colddiff {name}": f"commands/{name}.md"} for name, _, _ in commands()]
    for item in nav:
        if isinstance(item, dict) and COMMANDS_SECTION in item:
            section = item[COMMANDS_SECTION]
            section = section if isinstance(section, list) else [section]
            item[COMMANDS_SECTION] = [e for e in section if "commands/" not in str(e) or "commands/index.md" in str(e)] \
                + command_pages
    named = _nav_pages(nav)
    docs_dir = Path(config["docs_dir"])
    missing = sorted(p.relative_to(docs_dir).as_posix() for p in docs_dir.rglob("*.md")
                     if p.relative_to(docs_dir).as_posix() not in named)
    if missing:
        nav.append({MORE_SECTION: missing})
    return config


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    generated = {"index.md": index_from_readme(), "commands/index.md": "# Commands\n\n" + COMMANDS_MARK + "\n"}
    for name, _, help_line in commands():
        generated.setdefault(f"commands/{name}.md", "")   # prose, if any, comes from docs/commands/NAME.md
    for uri, content in generated.items():
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, content=content))
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    uri = page.file.src_uri
    m = re.fullmatch(r"commands/([^/]+)\.md", uri)
    if m and m.group(1) != "index":
        found = {name: (p, h) for name, p, h in commands()}.get(m.group(1))
        if found is not None:
            markdown = command_page(m.group(1), found[0], found[1], markdown)
    if COMMANDS_MARK in markdown:
        markdown = markdown.replace(COMMANDS_MARK, commands_table())
    if PROVENANCE_MARK in markdown:
        markdown = markdown.replace(PROVENANCE_MARK, provenance_markdown())
    if BENCHMARKS_README_MARK in markdown:
        markdown = markdown.replace(BENCHMARKS_README_MARK, benchmarks_readme_markdown())
    if BENCHMARK_MARK in markdown:
        markdown = markdown.replace(BENCHMARK_MARK, benchmark_results_markdown())
    return markdown
