"""notebooks/tour.ipynb runs top to bottom (tiny settings) and draws its figures.

The parameters are overridden the way papermill does it: a cell inserted after the one tagged
``parameters``.  Needs nbclient, nbformat and ipykernel (CI installs them; set
COLDDIFF_REQUIRE_NOTEBOOK=1 to fail instead of skipping without them).
"""
import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "tour.ipynb"
REQUIRE = os.environ.get("COLDDIFF_REQUIRE_NOTEBOOK") == "1"


def _have(*mods):
    try:
        for m in mods:
            __import__(m)
        return True
    except ImportError:
        return False


def _cells():
    import json

    return json.loads(NOTEBOOK.read_text())["cells"]


def test_notebook_has_one_parameter_cell_and_no_shell_commands():
    cells = _cells()
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and "STEPS =" in "".join(params[0]["source"])
    for c in cells:
        if c["cell_type"] != "code":
            continue
        src = "".join(c["source"])
        for line in src.splitlines():
            assert not line.lstrip().startswith("!"), line
            assert not line.lstrip().startswith("%%bash") and "subprocess" not in line and "os.system" not in line
    # committed with the outputs of a run at its default settings, every code cell executed in order
    counts = [c.get("execution_count") for c in cells if c["cell_type"] == "code"]
    assert counts == list(range(1, len(counts) + 1))
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert outputs and not [o for o in outputs if o.get("output_type") == "error"]


@pytest.mark.skipif(not _have("nbclient", "nbformat", "ipykernel") and not REQUIRE,
                    reason="nbclient/nbformat/ipykernel not installed (CI installs them)")
def test_tour_notebook_runs_top_to_bottom_with_tiny_settings(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    tiny = (f"STEPS = 20\nT_RESTORE = 2\nN_EVAL = 16\nGEN_N = 4\nCLASSIFIER = False\n"
            f"OUT = {str(tmp_path / 'tour')!r}\nDEVICE = 'cpu'\n")
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(tiny, metadata={"tags": ["injected-parameters"]}))
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()   # raises CellExecutionError naming the cell when any cell fails
    out = tmp_path / "tour.executed.ipynb"
    nbformat.write(nb, out)
    if os.environ.get("COLDDIFF_NOTEBOOK_OUT"):   # keep the executed notebook to look at its figures
        nbformat.write(nb, os.environ["COLDDIFF_NOTEBOOK_OUT"])
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    # strips, loss curve, the two samplers' trajectories, the user's blur, two generation grids
    assert len(images) == 6
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "trained to step 20" in text and "algorithm2: RMSE" in text
    tables = [o["data"]["text/markdown"] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "text/markdown" in o.get("data", {})]
    assert any("| Algorithm 2 |" in t and "| Direct |" in t for t in tables)
    assert (tmp_path / "tour" / "checkpoints").is_dir()
