import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_plain_modal_example_runs_and_learns():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "plain_modal.py")], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("round")]
    assert len(lines) == 3 and lines[-1].startswith("round 3: 120 labels")
    assert float(lines[-1].rsplit(" ", 1)[1]) > 0.5  # chance is 0.1
