"""The API reference and the notes build with Sphinx without a single warning."""

import importlib
import json
import os
import re
import sys
from pathlib import Path

import pytest

import background
import phasekit

ROOT = Path(__file__).resolve().parents[1]

# `python -m sphinx -W --keep-going -b html docs OUT`, then what the build left loaded in its process.
_BUILD = r"""
import json, multiprocessing, sys
from sphinx.cmd.build import main
rc = main(sys.argv[1:])
gui = sorted(m for m in sys.modules
             if m.startswith(("tkinter", "PyQt", "PySide", "gi.repository", "wx", "matplotlib.backends.backend_"))
             and m != "matplotlib.backends.backend_agg")
clients = False
if "distributed" in sys.modules:
    try:
        sys.modules["distributed"].get_client()
        clients = True
    except ValueError:
        pass
print("PHASEKIT-DOCS " + json.dumps({"gui": gui, "client": clients,
                                     "children": len(multiprocessing.active_children())}))
sys.exit(rc)
"""


def _docs_build(out: Path) -> dict:
    # A GUI backend asked for by the environment: the docs configuration must override it.
    env = {**os.environ, "MPLBACKEND": "TkAgg", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return dict(args=[sys.executable, "-c", _BUILD, "-W", "--keep-going", "-q", "-b", "html", str(ROOT / "docs"),
                      str(out)], cwd=ROOT, env=env)


DOCS_BUILD = background.Job("docs", _docs_build, timeout=300)
BACKGROUND_JOBS = (DOCS_BUILD,)


@pytest.fixture(scope="module")
def build():
    return DOCS_BUILD.result(), DOCS_BUILD.workdir


def _html(out: Path, page: str) -> str:
    return (out / page).read_text(encoding="utf-8")


def test_builds_without_warnings(build):
    proc, _ = build
    assert proc.returncode == 0, (proc.stderr or proc.stdout)[-4000:]
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr[-4000:]


def test_the_build_opens_no_gui_backend_and_starts_no_cluster(build):
    proc, _ = build
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("PHASEKIT-DOCS "))
    seen = json.loads(line.split(" ", 1)[1])
    assert seen == {"gui": [], "client": False, "children": 0}


def test_the_notes_are_pages(build):
    _, out = build
    assert "State order" in _html(out, "README.html")
    science = _html(out, "science.html")
    assert "Teacher, student and order parameters" in science
    assert 'id="1-teacher-student-and-order-parameters"' in science    # the notes' own section links resolve
    assert "Status vocabulary" in _html(out, "conventions.html")
    assert "ReLU perceptron" in _html(out, "reference-values.html")
    index = _html(out, "index.html")
    for page in ("science.html", "conventions.html", "reference-values.html", "api/index.html"):
        assert f'href="{page}' in index, page


def _ids(out: Path) -> set[str]:
    html = "".join(p.read_text(encoding="utf-8") for p in (out / "api").glob("*.html"))
    return set(re.findall(r'id="([^"]+)"', html))


@pytest.mark.parametrize("package", ["phasekit", "phasekit.core", "phasekit.committee", "phasekit.study",
                                     "phasekit.plotting", "phasekit.propagation", "phasekit.deep_linear",
                                     "phasekit.lazy_training"])
def test_every_public_name_is_documented(build, package):
    _, out = build
    ids = _ids(out)
    module = importlib.import_module(package)
    missing = []
    for name in module.__all__:
        if name == "__version__":
            continue
        obj = getattr(module, name)
        if isinstance(obj, type(phasekit)):
            found = f"module-{obj.__name__}" in ids
        else:
            # documented once, in the module that defines it: phasekit.<...>.<name>
            found = any(i.startswith("phasekit.") and i.endswith("." + name) for i in ids)
        if not found:
            missing.append(name)
    assert not missing, f"{package}: not in the API reference: {missing}"


def test_the_api_pages_describe_the_main_calls(build):
    _, out = build
    api = _html(out, "api/index.html")
    for name in ("integrate", "critical_eta", "plateau_scaling", "simulate", "sweep", "write_report"):
        assert f">{name}<" in api, name
    committee = _html(out, "api/committee.html")
    assert 'id="phasekit.committee.dynamics.integrate"' in committee
    assert "alpha_max" in committee and "Generalisation error" in committee
    for page in ("core", "study", "plotting", "propagation", "deep_linear", "lazy_training", "report", "cli"):
        assert f'id="module-phasekit.{page}"' in _html(out, f"api/{page}.html"), page
