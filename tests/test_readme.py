"""The README's tour runs as written, top to bottom."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_tour_runs_as_written(tmp_path):
    blocks = _python_blocks()
    assert blocks, "README.md has no python block"
    script = tmp_path / "tour.py"
    script.write_text("\n".join(blocks))
    # In a fresh folder, as a plain script (no __main__ guard), the way a reader pastes it.
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list(tmp_path.glob("outputs")), "the tour should not write outputs (write=False)"
