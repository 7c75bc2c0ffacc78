"""The README's tour runs as written, top to bottom."""

import re
import sys
from pathlib import Path

import background

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _tour(folder: Path) -> dict:
    script = folder / "tour.py"
    script.write_text("\n".join(_python_blocks()))
    # In a fresh folder, as a plain script (no __main__ guard), the way a reader pastes it.
    return dict(args=[sys.executable, str(script)], cwd=folder)


TOUR = background.Job("tour", _tour, timeout=300)
BACKGROUND_JOBS = (TOUR,)


def test_the_tour_runs_as_written():
    assert _python_blocks(), "README.md has no python block"
    proc = TOUR.result()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list(TOUR.workdir.glob("outputs")), "the tour should not write outputs (write=False)"
