"""The library's layers (common/__init__.py): every import inside common/ points down the layer order, and
every module sits in a layer, so the folders keep showing the architecture."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import ROOT

LAYERS = ("core", "runs", "scoring", "models", "methods", "config", "data", "generation", "training", "comparison",
          "hub", "pipeline")
COMMANDS = "commands"  # the modules directly in common/: above every layer
COMMON = ROOT / "common"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    """common.<layer>.<module> -> layer; a module directly in common/ -> COMMANDS; common itself -> ''."""
    parts = module.split(".")
    if len(parts) == 1:
        return ""
    return parts[1] if (COMMON / parts[1]).is_dir() else COMMANDS


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module) of every import of the project's library in `source`, the text of `module`,
    at any depth (imports inside functions too).

    Example:
        >>> imported_modules("from ..core.cli import run\n", "common.pipeline.steps")
        [(1, 'common.core.cli')]
    """
    package = module if is_package else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{alias.name}" for alias in node.names] if not node.module else [target]
            found += [(node.lineno, name) for name in names if name.startswith("common")]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("common")]
    return found


def rank(layer: str) -> int:
    return len(LAYERS) if layer == COMMANDS else LAYERS.index(layer)


def test_every_module_of_common_is_in_a_layer_or_a_command():
    folders = sorted(p.name for p in COMMON.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders == sorted(LAYERS)
    for folder in folders:
        doc = ast.get_docstring(ast.parse((COMMON / folder / "__init__.py").read_text(encoding="utf-8")))
        assert doc and len(doc.split()) >= 20, f"common/{folder}/__init__.py needs a paragraph on its layer"
    commands = [p for p in COMMON.glob("*.py") if p.name != "__init__.py"]
    for path in commands:
        assert 'if __name__ == "__main__":' in path.read_text(encoding="utf-8"), f"{path.name} is not a command"


def test_imports_point_down_the_layers():
    upward = []
    for path in sorted(COMMON.rglob("*.py")):
        here = layer_of(module_name(path))
        source = path.read_text(encoding="utf-8")
        for line, target in imported_modules(source, module_name(path), path.name == "__init__.py"):
            there = layer_of(target)
            if there and here and there != here and rank(there) > rank(here):
                upward.append(f"{path.relative_to(ROOT)}:{line} ({here}) imports {target} ({there})")
    assert upward == []


def test_the_layer_check_resolves_relative_imports_at_any_depth():
    """The check itself: an import inside a function of the generation layer, relative, into training."""
    source = "def f():\n    from ..training.trainer import train_model\n    from . import kv_cache\n"
    found = imported_modules(source, "common.generation.generate")
    assert found == [(2, "common.training.trainer"), (3, "common.generation.kv_cache")]
    assert rank(layer_of(found[0][1])) > rank(layer_of("common.generation.generate"))
    assert layer_of("common.demo") == COMMANDS and rank(COMMANDS) > rank("pipeline")


def test_the_architecture_page_lists_every_module_in_its_layer():
    """docs/architecture.md's table names each module of common/ once, in the layer it sits in."""
    table = [line.split("|")[1:3] for line in (ROOT / "docs" / "architecture.md").read_text().splitlines()
             if line.startswith("| ") and "`" in line]
    listed = {name: layer.strip() for layer, cell in table for name in cell.split("`")[1::2]}
    modules = {str(p.relative_to(ROOT)): layer_of(module_name(p)) for p in COMMON.rglob("*.py")
               if p.name != "__init__.py"}
    assert listed == modules
