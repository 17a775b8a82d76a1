import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("strategy", [["typiclust"]])  # the default (entropy) takes the same path
def test_plain_modal_example_runs_and_learns(strategy):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "plain_modal.py"), *strategy], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("round")]
    assert len(lines) == 3 and lines[-1].startswith("round 3: 120 labels")
    assert float(lines[-1].rsplit(" ", 1)[1]) > 0.5  # chance is 0.1


def test_plugin_template_tests_pass_against_this_alplug():
    template = ROOT / "examples" / "plugin-template"
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(template / "tests")],
                         capture_output=True, text=True, timeout=600, cwd=template,
                         env={**__import__("os").environ, "PYTHONPATH": str(template)})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "2 passed" in out.stdout


def test_gpu_check_says_there_is_no_gpu_and_exits_0():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: run benchmarks/gpu_check.sh itself")
    out = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                         timeout=300, env={**__import__("os").environ, "ALPLUG_PYTHON": sys.executable})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no CUDA device on this machine" in out.stdout
