"""The docs tell the truth: every file, folder and module that README.md, docs/*.md and tests/README.md name
exists (checked against the files on disk when the test runs), and the report tables in docs/ are exactly what
the summary scripts write from the committed results, so prose and numbers cannot drift apart.

What counts as naming a file:
- a path from the project root (`common/...`, `benchmarks/...`, `tests/...`, `configs/...`, `docs/...`,
  `data/...`, `.ci/...`), as a file or a folder; `<name>` in it stands for any name and `{a,b}` for each of a and b;
- a `.py` or `.yaml` name without that root (`train_lora.py`, `methods/lora.py`): some file of the project
  must end with it;
- a markdown link, relative to the page that holds it;
- a module of the project: `python -m common.demo`, or a dotted name such as `common.methods.load_trained`,
  whose last part, when it is not a module, must be defined or imported in the module before it.
"""

from __future__ import annotations

import ast
import itertools
import os
import re
from pathlib import Path

import pytest

from benchmarks import performance_summary, quality_summary
from helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "tests" / "README.md"]
ROOTED = re.compile(r"(?<![\w./-])(?:\.ci|common|benchmarks|tests|configs|docs|data)/(?:[\w./*-]|<[^<>\s/]+>|\{[\w.,-]+\})*")
BARE = re.compile(r"(?<![\w./<>{}*-])[\w.-]+(?:/[\w.-]+)*\.(?:py|yaml)\b")
LINK = re.compile(r"\]\(([^)\s]+)\)")
MODULE = re.compile(r"python3? -m ([\w.]+)|(?<![\w./-])((?:common|benchmarks)(?:\.\w+)+)")
OUR_PACKAGES = ("common", "benchmarks", "tests")


def project_files() -> list[str]:
    """Every file under the project root, as a posix path relative to it; hidden folders and runs/ left out."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("runs", "__pycache__")]
        found += [Path(folder, name).relative_to(ROOT).as_posix() for name in files]
    return found


def expand(path: str) -> list[str]:
    """`{a,b}` into each alternative and `<name>` into a glob wildcard.

    Example:
        >>> expand("benchmarks/results/quality/{mixed,cnn}_beams_4/<file>.json")
        ['benchmarks/results/quality/mixed_beams_4/*.json', 'benchmarks/results/quality/cnn_beams_4/*.json']
    """
    parts = re.split(r"\{([\w.,-]+)\}", re.sub(r"<[^<>]+>", "*", path))
    choices = [[part] if i % 2 == 0 else part.split(",") for i, part in enumerate(parts)]
    return ["".join(choice) for choice in itertools.product(*choices)]


def rooted_path_missing(path: str) -> bool:
    return not all(list(ROOT.glob(p.rstrip("/"))) if "*" in p else (ROOT / p).exists() for p in expand(path))


def bare_name_missing(name: str, files: list[str]) -> bool:
    return not any(f == name or f.endswith("/" + name) for f in files)


def module_file(parts: list[str]) -> Path | None:
    """The file or package folder of a dotted module name of this project, or None."""
    path = ROOT.joinpath(*parts)
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return path if path.is_dir() else None


def defines(source: Path, name: str) -> bool:
    """Whether a module (a package: its __init__.py) defines, assigns or imports `name` at its top level."""
    source = source / "__init__.py" if source.is_dir() else source
    if not source.is_file():
        return False
    names = set()
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
    return name in names


def module_missing(dotted: str, run_as_script: bool) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        found = module_file(parts[:cut])
        if found is None:
            continue
        rest = parts[cut:]
        if run_as_script:
            return bool(rest) or (found.is_dir() and not (found / "__main__.py").is_file())
        return len(rest) > 1 or (len(rest) == 1 and not defines(found, rest[0]))
    return True


def missing_names(page: Path, files: list[str]) -> list[str]:
    text = page.read_text(encoding="utf-8")
    missing = [p for p in ROOTED.findall(text) if rooted_path_missing(p.rstrip(".,"))]
    missing += [name for name in BARE.findall(text) if not name.startswith(tuple(f"{d}/" for d in ("common",
                "benchmarks", "tests", "configs", "docs", "data"))) and bare_name_missing(name, files)]
    for target in LINK.findall(text):
        target = target.split("#")[0]
        if target and not re.match(r"[a-z]+:", target) and not (page.parent / target).exists():
            missing.append(target)
    for script, dotted in MODULE.findall(text):
        name = (script or dotted).rstrip(".")
        if name.split(".")[0] in OUR_PACKAGES and module_missing(name, run_as_script=bool(script)):
            missing.append(("python -m " if script else "") + name)
    return sorted(set(missing))


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_file_folder_and_module_a_page_names_exists(page):
    missing = missing_names(page, project_files())
    assert missing == [], f"{page.name} names what does not exist: {missing}"


def test_the_checker_catches_what_is_missing(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("`benchmarks/nope.py`, `configs/accelerate/`, [a](nowhere.md), `train_lora.py`, `gone.py`,\n"
                    "`benchmarks/results/quality/{cnn,nope}/comparison.json`, `benchmarks/results/<x>.json`,\n"
                    "python -m common.demo, python -m common.nope, `common.methods.load_trained`, "
                    "`common.methods.no_such_function`\n")
    assert missing_names(page, project_files()) == sorted([
        "benchmarks/nope.py", "nowhere.md", "gone.py", "benchmarks/results/quality/{cnn,nope}/comparison.json",
        "python -m common.nope", "common.methods.no_such_function"])


@pytest.mark.parametrize(("doc", "tag", "section"), [
    ("docs/quality.md", "quality_summary", quality_summary.section),
    ("docs/performance.md", "performance_summary", performance_summary.section),
])
def test_report_tables_are_what_the_scripts_write_from_the_committed_results(doc, tag, section):
    """Refresh with `python benchmarks/quality_summary.py --write_docs` / `python benchmarks/performance_summary.py`."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    assert text.count(f"<!-- {tag}:") >= 4
    assert quality_summary.fill_marked(text, tag, section) == text


def test_an_unclosed_marker_is_an_error():
    with pytest.raises(ValueError, match="no <!-- /t:KEY -->"):
        quality_summary.fill_marked("<!-- t:cnn -->\nold\n<!-- /t:mixed -->\n", "t", str)


def test_the_readme_is_a_manual_of_at_most_250_lines_with_the_blocks_ci_and_tests_read():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    test_block = text.split("<!-- test-command -->")[1].split("<!-- /test-command -->")[0]
    assert "HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q" in test_block
    assert "HF_HUB_OFFLINE=1 .venv/bin/python -m common.demo\n" in text
    assert "python evaluate_all.py" in text.split("<!-- gpu-commands -->")[1].split("<!-- /gpu-commands -->")[0]
    assert "configs/accelerate/fsdp.yaml --num_processes 2" in text
