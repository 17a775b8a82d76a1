"""Publishing works: wheels of core, plugins and the plugin template install with pip, offline, from one folder."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV = os.environ.get("UV") or shutil.which("uv")


def stub_wheel(folder: Path, name: str, version: str) -> Path:
    """An installable wheel of ``name`` that holds nothing but its metadata."""
    import base64
    import hashlib
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: alplug-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()},"
              f"{len(text.encode())}" for path, text in files.items()] + [f"{info}/RECORD,,"]
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in files.items():
            wheel.writestr(member, text)
        wheel.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def run(*args, **kwargs):
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=900, **kwargs)
    assert out.returncode == 0, f"{args}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


BALD_QUERY = """
import numpy as np, torch
from sklearn.datasets import load_digits
from alplug.estimators import make_estimator
from alplug.strategies import get_strategy

digits = load_digits()
X, y = np.rint(digits.images * (255 / 16)).astype(np.uint8)[:, None], digits.target.astype(np.int64)
torch.manual_seed(0)
net = make_estimator("squeezenet1_1", in_channels=1, num_classes=10, epochs=1).fit(X[:100], y[:100])
bald = get_strategy("bald")
idx, scores = bald(net, X[100:400], n_instances=5, random_state=0)
assert len(set(idx.tolist())) == 5 and np.all(scores >= 0), (idx, scores)
print("bald from", bald.alplug_sources["bald"], idx.tolist())
"""


@pytest.mark.skipif(UV is None, reason="building wheels offline needs uv (the README's set-up)")
def test_wheels_install_offline_and_extras_pull_plugins(tmp_path):
    wheels = tmp_path / "wheels"
    release = run(sys.executable, ROOT / "scripts" / "release.py", "--out", wheels, "--offline", cwd=ROOT)
    assert "versions consistent" in release
    built = sorted(p.name for p in wheels.iterdir() if p.suffix in (".whl", ".gz"))
    packages = ["alplug", "alplug_bald", "alplug_kmeans", "alplug_outlier", "alplug_skactiveml", "alplug_timm"]
    assert built == sorted([f"{p}-0.1.0-py3-none-any.whl" for p in packages] + [f"{p}-0.1.0.tar.gz" for p in packages])
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

    # the release's three strategy extras from the folder alone, and a BALD query with what they installed.
    # baal declares jupyter (about 90 packages) that it never imports: an empty stand-in satisfies pip offline.
    stubs = tmp_path / "stubs"
    stub_wheel(stubs, "jupyter", "1.1.1")
    run(*pip, "--find-links", stubs, "alplug[bald,kmeans,outlier]", env=env)
    installed = run(python, "-m", "pip", "list", env=env)
    assert all(f"alplug-{p}" in installed for p in ("bald", "kmeans", "outlier"))
    assert "bald from alplug-bald 0.1.0" in run(python, "-c", BALD_QUERY, env=env, cwd=tmp_path)


def test_a_release_whose_versions_disagree_is_refused(tmp_path):
    """The release check reads the built files' metadata: a plugin that cannot install beside the alplug built
    with it, or an extra that excludes its plugin, is named."""
    import zipfile

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from release import release_problems
    finally:
        sys.path.pop(0)

    def wheel(name, version, *requires):
        with zipfile.ZipFile(tmp_path / f"{name.replace('-', '_')}-{version}-py3-none-any.whl", "w") as w:
            w.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", "Metadata-Version: 2.1\n"
                       f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires))

    wheel("alplug", "0.2.0", 'alplug-bald<0.2,>=0.1; extra == "bald"')
    wheel("alplug-bald", "0.1.0", "alplug<0.2,>=0.1")
    problems = release_problems(tmp_path, {"alplug", "alplug-bald", "alplug-kmeans"})
    assert "alplug-bald 0.1.0 requires alplug<0.2,>=0.1, but alplug 0.2.0 is built beside it" in problems
    assert "alplug-kmeans was not built" in problems and "alplug has no sdist" in problems
    (tmp_path / "alplug_bald-0.1.0-py3-none-any.whl").unlink()
    wheel("alplug-bald", "0.2.0", "alplug<0.3,>=0.2")
    assert any("extra" in p and "alplug-bald 0.2.0 is built beside it" in p for p in release_problems(tmp_path, set()))


@pytest.mark.skipif(UV is None or shutil.which("git") is None, reason="needs uv and git (the README's set-up)")
def test_a_plugin_under_development_goes_into_a_fresh_checkouts_environment_and_stays(tmp_path):
    """docs/publishing.md's way, from a fresh clone: `uv pip install -e` puts the plugin into the checkout's
    environment; `uv run` (which syncs inexactly) keeps it; a plain `uv sync` would remove it, `--inexact` not."""
    clone, plugin = tmp_path / "alplug", tmp_path / "my-plugin"
    run("git", "clone", "-q", ROOT, clone)
    shutil.copytree(ROOT / "examples" / "plugin-template", plugin, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    env.pop("ALPLUG_DISABLE_PLUGINS", None)
    run(UV, "sync", "-q", "--frozen", "--offline", cwd=clone, env=env)
    run(UV, "pip", "install", "-q", "--offline", "-e", plugin, cwd=clone, env=env)
    for _ in range(2):  # each `uv run` syncs the environment first: the plugin must survive it
        assert "alplug-example-strategy 0.1.0" in run(UV, "run", "--offline", "alplug", "strategies", cwd=clone, env=env)
    (plugin / "alplug_example_strategy" / "extra.py").write_text("EDITED = True\n")  # editable: no reinstall
    run(UV, "run", "--offline", "python", "-c", "import alplug_example_strategy.extra", cwd=clone, env=env)
    run(UV, "sync", "-q", "--frozen", "--offline", "--inexact", cwd=clone, env=env)
    assert "least-typical" in run(UV, "run", "--offline", "alplug", "strategies", cwd=clone, env=env)
