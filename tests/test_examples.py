"""The examples notebook runs, top to bottom, on this tree's phasekit."""

import json
import math
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
TOUR = ROOT / "examples" / "tour.ipynb"
KERNEL = "phasekit-examples"

_CHECK = ("import json, matplotlib, phasekit\n"
          "print('PHASEKIT-KERNEL ' + json.dumps({'file': phasekit.__file__, 'backend': matplotlib.get_backend()}))")


def _kernelspec(tmp: Path) -> Path:
    # A kernel on this interpreter with this tree's phasekit first on its path; figures through the
    # inline backend (matplotlib's Agg renderer, no GUI); IPython's profile kept in the temporary folder.
    spec = tmp / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "phasekit (tests)", "language": "python",
        "env": {"PYTHONPATH": str(ROOT), "MPLBACKEND": "module://matplotlib_inline.backend_inline",
                "IPYTHONDIR": str(tmp / "jupyter" / "ipython")},
    }))
    return tmp / "jupyter"


def test_the_stored_notebook_has_no_outputs():
    nb = nbformat.read(TOUR, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tour")
    mp = pytest.MonkeyPatch()
    jupyter = _kernelspec(tmp)
    mp.setenv("JUPYTER_PATH", str(jupyter))
    mp.setenv("JUPYTER_RUNTIME_DIR", str(jupyter / "runtime"))
    try:
        nb = nbformat.read(TOUR, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(_CHECK))
        # Run in an empty folder: the tour writes nothing.
        NotebookClient(nb, kernel_name=KERNEL, timeout=120, resources={"metadata": {"path": str(tmp)}}).execute()
    finally:
        mp.undo()
    assert not [p for p in tmp.iterdir() if p.name != "jupyter"], "the tour wrote files"
    return nb


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def test_the_kernel_runs_this_trees_phasekit(executed):
    line = next(ln for ln in _text(executed.cells[-1]).splitlines() if ln.startswith("PHASEKIT-KERNEL "))
    seen = json.loads(line.split(" ", 1)[1])
    assert Path(seen["file"]).resolve().is_relative_to(ROOT)
    assert "inline" in seen["backend"] or seen["backend"].lower() == "agg"


def test_every_cell_runs_quietly_and_every_figure_renders(executed):
    code = [c for c in executed.cells if c.cell_type == "code"]
    stderr = [o.text for c in code for o in c.outputs if o.output_type == "stream" and o.name == "stderr"]
    assert not stderr, stderr
    shows = [c for c in code if "plt.show()" in c.source]
    assert shows
    for cell in shows:
        assert any("image/png" in o.get("data", {}) for o in cell.outputs), cell.source[:80]


def test_the_numbers_it_prints_agree_with_each_other(executed):
    out = "\n".join(_text(c) for c in executed.cells if c.cell_type == "code")
    # The plateau law: the slope fitted to integrated runs against 1/lambda_esc from the linearisation.
    fitted, predicted = map(float, re.search(r"fitted slope (\S+), predicted 1/lambda_esc (\S+)", out).groups())
    assert fitted == pytest.approx(predicted, rel=0.01)
    lam = float(re.search(r"lambda_esc = (\S+) per unit alpha", out).group(1))
    assert predicted == pytest.approx(1 / lam, rel=1e-5)
    # The sweep: the runs below eta_c converge; above it the perfect solution is unstable.
    eta_c = float(re.search(r"eta_c = (\S+)", out).group(1))
    assert eta_c == pytest.approx(float(re.search(r"crosses zero near eta = (\S+)", out).group(1)), abs=0.05)
    rows = re.findall(r"eta = +(\S+) +convergence time +(\S+) +(\w+)", out)
    assert len(rows) == 4
    for eta, time, status in rows:
        below = float(eta) < eta_c
        assert (status, math.isfinite(float(time))) == (("ok", True) if below else ("not_reached", False)), eta
