"""Publishing works: wheels of core, plugins and the plugin template install with pip, offline, from one folder."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV = os.environ.get("UV") or shutil.which("uv")


def run(*args, **kwargs):
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=900, **kwargs)
    assert out.returncode == 0, f"{args}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.mark.skipif(UV is None, reason="building wheels offline needs uv (the README's set-up)")
def test_wheels_install_offline_and_extras_pull_plugins(tmp_path):
    wheels = tmp_path / "wheels"
    run(UV, "build", "-q", "--offline", "--all-packages", "--wheel", "-o", wheels, cwd=ROOT)
    for example in ("plugin-template", "model-plugin", "dataset-plugin"):
        run(UV, "build", "-q", "--offline", "--wheel", "-o", wheels, ROOT / "examples" / example, cwd=ROOT)
    names = sorted(p.name.split("-")[0] for p in wheels.glob("*.whl"))
    assert names == ["alplug", "alplug_bald", "alplug_example_dataset", "alplug_example_model",
                     "alplug_example_strategy", "alplug_kmeans", "alplug_outlier", "alplug_skactiveml", "alplug_timm"]

    # A fresh virtual environment (with pip) holding the lock file's third-party packages, linked from uv's
    # cache (torch alone is gigabytes; nothing is downloaded), and no alplug distribution. `uv sync --frozen`
    # installs by the lock's URLs; `uv pip install name==version --offline` would need the index pages
    # cached as well, which a new machine's first `uv sync` does not fetch.
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(UV, "sync", "-q", "--frozen", "--offline", "--all-packages", "--no-install-workspace", "--inexact",
        cwd=ROOT, env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)})
    listed = run(python, "-m", "pip", "list")
    assert "alplug" not in listed and "torch " in listed

    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INPUT": "1"}
    env.pop("ALPLUG_DISABLE_PLUGINS", None)
    pip = [python, "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels]
    run(*pip, "alplug[outlier]", env=env)
    installed = run(python, "-m", "pip", "list", env=env)
    assert "alplug-outlier" in installed and "alplug-bald" not in installed

    listing = run(venv / "bin" / "alplug", "strategies", env=env)
    lines = {line.split()[0]: line for line in listing.splitlines() if line.strip()}
    assert "alplug-outlier 0.1.0" in lines["outlier"] and "alplug-outlier 0.1.0" in lines["cluster-outlier"]
    assert "bald" not in lines and 'pip install "alplug[bald]"' in listing
    assert "typiclust" not in lines and 'pip install "alplug[skactiveml]"' in listing

    run(*pip, "alplug-example-strategy", env=env)  # a third-party plugin built from the template
    listing = run(venv / "bin" / "alplug", "strategies", env=env)
    assert "least-typical" in listing and "alplug-example-strategy 0.1.0" in listing

    # a model plugin and a data-source plugin written outside alplug, from the docs, installed with pip
    models = run(venv / "bin" / "alplug", "models", env=env)
    assert "small-cnn" not in models and 'pip install "alplug[timm]"' in models
    run(*pip, "alplug-example-model", "alplug-example-dataset", "alplug[timm]", env=env)
    models = run(venv / "bin" / "alplug", "models", env=env)
    lines = {line.split()[0]: line for line in models.splitlines() if line.strip()}
    assert "alplug-example-model 0.1.0" in lines["small-cnn"] and "alplug-timm 0.1.0" in lines["timm"]
    datasets = run(venv / "bin" / "alplug", "datasets", env=env)
    assert any(line.startswith("imagelist") and "alplug-example-dataset 0.1.0" in line for line in datasets.splitlines())
