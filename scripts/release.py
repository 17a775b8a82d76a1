"""Build a release: the wheel and sdist of alplug and of every package in plugins/, into one folder, checked.

    uv run python scripts/release.py                 # into dist/ (refuses a folder that holds files)
    uv run python scripts/release.py --out DIR --offline

uv builds them (`uv build --all-packages`: the workspace's members are the packages in plugins/). Then the built
files' own metadata is checked against each other, as pip will read it: every plugin's requirement on alplug
admits the alplug built beside it, every alplug extra that names a plugin admits that plugin's version, every
package in plugins/ was built, and each has a wheel and an sdist. Nothing of this is in uv or pip: they check
one package's requirements against an index, not a release's packages against each other.

Publish the folder with `uv publish DIR/*` (or `twine upload DIR/*`); docs/publishing.md has the whole path.
"""
from __future__ import annotations

import argparse
import email.parser
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def metadata_of(path: Path) -> email.message.Message:
    """The core metadata (PKG-INFO / METADATA) of a built wheel or sdist."""
    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            text = archive.read(name).decode()
    else:
        with tarfile.open(path) as archive:
            member = next(m for m in archive.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"))
            text = archive.extractfile(member).read().decode()
    return email.parser.Parser().parsestr(text)


def release_problems(folder: Path, expected: set[str]) -> list[str]:
    """What is wrong with the built files in ``folder`` as one release (names normalised as pip does)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    problems, versions, requirements, kinds = [], {}, {}, {}
    for path in sorted(folder.iterdir()):
        if not path.name.endswith((".whl", ".tar.gz")):
            continue
        meta = metadata_of(path)
        name, version = canonicalize_name(meta["Name"]), Version(meta["Version"])
        if versions.setdefault(name, version) != version:
            problems.append(f"{name} is built as {versions[name]} and as {version}")
        kinds.setdefault(name, set()).add("wheel" if path.name.endswith(".whl") else "sdist")
        requirements[name] = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
    for name in sorted(expected - set(versions)):
        problems.append(f"{name} was not built")
    for name, built in sorted(kinds.items()):
        if built != {"wheel", "sdist"}:
            problems.append(f"{name} has no {({'wheel', 'sdist'} - built).pop()}")
    for name, reqs in sorted(requirements.items()):
        for req in reqs:
            other = canonicalize_name(req.name)
            if other in versions and not req.specifier.contains(versions[other], prereleases=True):
                where = f" (extra {req.marker})" if req.marker else ""
                problems.append(f"{name} {versions[name]} requires {req}{where}, but {other} {versions[other]} is "
                                "built beside it")
    return problems


def workspace_packages() -> set[str]:
    import tomllib

    from packaging.utils import canonicalize_name

    names = {"alplug"}
    for member in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]:
        names.add(canonicalize_name(tomllib.loads((ROOT / member / "pyproject.toml").read_text())["project"]["name"]))
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "dist"), help="folder for the wheels and sdists [dist/]")
    parser.add_argument("--offline", action="store_true", help="build without the network (uv's cache only)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        print(f"release: {out} holds files already; give an empty or new --out", file=sys.stderr)
        return 2
    uv = shutil.which("uv")
    if uv is None:
        print("release: needs uv (pip install uv)", file=sys.stderr)
        return 2
    print(f"release: building alplug and the packages in plugins/ into {out} ...", flush=True)
    command = [uv, "build", "-q", "--all-packages", "-o", str(out)] + (["--offline"] if args.offline else [])
    if subprocess.run(command, cwd=ROOT).returncode:
        print("release: uv build failed (its output is above)", file=sys.stderr)
        return 1
    problems = release_problems(out, workspace_packages())
    for problem in problems:
        print(f"release: {problem}", file=sys.stderr)
    if problems:
        return 1
    built = sorted(p.name for p in out.iterdir())
    print(f"release: {len(built)} files, versions consistent: " + ", ".join(built))
    return 0


if __name__ == "__main__":
    sys.exit(main())
