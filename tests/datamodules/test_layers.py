"""The data layer imports no model, no training and no orchestration code: a scan of its imports."""

from __future__ import annotations

import ast
from pathlib import Path

import litlab.datamodules

DATAMODULES = Path(litlab.datamodules.__file__).parent
# The model layer, the run machinery and the orchestrators on top, and model libraries.
FORBIDDEN = (
    "litlab.lightning_modules", "litlab.networks", "litlab.metrics", "litlab.callbacks",
    "litlab.optim", "litlab.sweeps", "litlab.workflows", "litlab.cli", "litlab.cv",
    "litlab.report", "litlab.runs", "timm", "segmentation_models_pytorch",
)  # fmt: skip


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module an ``import`` names anywhere in the file (functions and type-checking
    blocks included), with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_datamodules_import_no_model_layer() -> None:
    files = sorted(DATAMODULES.rglob("*.py"))
    assert len(files) > 20  # the scan reads the package, not an empty folder
    bad = [
        f"{path.relative_to(DATAMODULES.parent)}:{line} imports {name}"
        for path in files
        for line, name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    ]
    assert not bad, "\n".join(bad)


def test_the_scan_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "x.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import timm\n"
        "def f():\n    from litlab.lightning_modules import pipeline\n"
    )
    names = [name for _, name in _imports(source)]
    assert "timm" in names and "litlab.lightning_modules.pipeline" in names
