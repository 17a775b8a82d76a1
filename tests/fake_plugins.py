"""Installs throw-away strategy distributions on sys.path (dist-info + module), as pip would."""
from __future__ import annotations

import textwrap
from pathlib import Path


def install_fake_distribution(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]):
    site.mkdir(parents=True, exist_ok=True)
    info = site / f"{dist.replace('-', '_')}-0.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3.0\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[alplug.query_strategies]\n{lines}\n")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    return site


BAD_PLUGIN_MODULES = {
    "fake_broken": "raise ImportError('libfoo is missing')\n",
    "fake_bad": """
        import numpy as np

        def duplicates(learner, X_pool, n_instances=1, *, random_state=None):
            \"\"\"Always returns index 0, n times.\"\"\"
            return np.zeros(n_instances, dtype=int), np.zeros(n_instances)

        def bare(learner, X_pool, n_instances=1, *, random_state=None):
            \"\"\"Returns bare indices (the old modAL style).\"\"\"
            return np.arange(n_instances)

        def outside(learner, X_pool, n_instances=1, *, random_state=None):
            \"\"\"Returns indices past the end of the pool.\"\"\"
            return np.arange(n_instances) + len(X_pool), np.zeros(n_instances)

        def short(learner, X_pool, n_instances=1, *, random_state=None):
            \"\"\"Returns one index too few.\"\"\"
            return np.arange(n_instances - 1), np.zeros(n_instances - 1)

        def positional(learner, X_pool, n_instances=1, random_state=None):
            \"\"\"random_state is not keyword-only.\"\"\"
            return np.arange(n_instances), np.zeros(n_instances)
    """,
}
BAD_PLUGIN_ENTRY_POINTS = {
    "broken-import": "fake_broken:anything",
    "dupes": "fake_bad:duplicates",
    "bare-indices": "fake_bad:bare",
    "out-of-range": "fake_bad:outside",
    "too-few": "fake_bad:short",
    "bad-signature": "fake_bad:positional",
}
