"""The import graph of alplug/, imports inside functions included: no circles, and the plugin layer's registries
and contracts (strategies, models, data sources, discovery) never reach up into the applications built on them."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Built on the plugin layer: runs and studies, labeling projects, tracking, reports, training add-ons, the CLI.
APPLICATIONS = ("alplug.loop", "alplug.study", "alplug.backends", "alplug.project", "alplug.tracking",
                "alplug.report", "alplug.recipes", "alplug.plots", "alplug.summary", "alplug.ssl", "alplug.semi",
                "alplug.stopping", "alplug.rundir", "alplug.cli", "alplug.cli_options", "alplug.cli_project",
                "alplug.round_steps", "alplug.records")
PLUGIN_LAYER = ("alplug.plugins", "alplug.strategies", "alplug.models", "alplug.data")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, package: str = "alplug") -> dict[str, set[str]]:
    """module -> the package's modules it imports anywhere in its text (``from pkg import submodule`` counts as
    the submodule; a name from a package counts as the package)."""
    modules = {module_name(p, root): p for p in (root / package).rglob("*.py")}

    def known(name: str) -> str | None:
        while name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        return name if name in modules else None

    edges = {m: set() for m in modules}
    for name, path in modules.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(here[:len(here) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                found = known(target) if target.split(".")[0] == package else None
                if found and found != name:
                    edges[name].add(found)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_detector_finds_a_circle_through_a_function_level_import(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from .a import A\n")
    (package / "sub" / "a.py").write_text("def f():\n    from ..b import B\n")
    (package / "b.py").write_text("from .sub import A\n")
    (package / "c.py").write_text("import pkg.b\n")
    assert cycles(import_graph(tmp_path, "pkg")) == [["pkg.b", "pkg.sub", "pkg.sub.a"]]


def test_alplug_has_no_import_circle():
    assert cycles(import_graph(ROOT)) == []


def test_the_plugin_layer_imports_no_application():
    edges = import_graph(ROOT)
    up = sorted(f"{m} -> {t}" for m, targets in edges.items() if within(m, PLUGIN_LAYER)
                for t in targets if within(t, APPLICATIONS))
    assert up == []
