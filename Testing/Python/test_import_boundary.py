"""Layering: the library never imports Qt, and touches Slicer only in its MRML bridge."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT

LIB = REPO_ROOT / "Wonder3DMedLib"
QT_MODULES = {"qt", "ctk", "PythonQt", "PyQt5", "PyQt6", "PySide2", "PySide6"}
SLICER_MODULES = {"slicer", "MRMLCorePython", "vtkSlicerSegmentationsModuleLogicPython"}


def imported_top_modules(path: Path) -> set[str]:
    """Top-level names of every module imported anywhere in a file (incl. inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.add(node.args[0].value.split(".")[0])
    return names


LIBRARY_FILES = sorted(p for p in LIB.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: p.relative_to(LIB).as_posix())
def test_library_module_respects_the_boundary(path):
    imported = imported_top_modules(path)
    assert not imported & QT_MODULES, f"Qt import in the library: {imported & QT_MODULES}"
    in_bridge = path.relative_to(LIB).parts[0] == "mrml"
    if not in_bridge:
        assert not imported & SLICER_MODULES, "only Wonder3DMedLib/mrml may import slicer"


def test_the_checker_sees_nested_imports(tmp_path):
    """The AST scan must catch imports hidden in functions and import_module calls."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import qt.QtCore\n    from slicer.util import x\n"
                      "    importlib.import_module('ctk')\n")
    assert {"qt", "slicer", "ctk"} <= imported_top_modules(sample)


def test_module_file_has_no_numerics():
    """Wonder3DMed.py stays thin: the numerics live in the library (and torch never loads into Slicer)."""
    imported = imported_top_modules(REPO_ROOT / "Wonder3DMed" / "Wonder3DMed.py")
    heavy = {"torch", "diffusers", "transformers", "scipy", "skimage", "SimpleITK", "trimesh", "pydicom"}
    assert not imported & heavy


def test_cli_help_and_light_modules_do_not_load_torch():
    """``wonder3dmed --help`` stays instant: no torch, diffusers or slicer at import time."""
    code = (
        "import sys\n"
        "from Wonder3DMedLib.cli import build_parser\n"
        "import Wonder3DMedLib.views, Wonder3DMedLib.mesh_io, Wonder3DMedLib.weights, Wonder3DMedLib.imaging.framing\n"
        "build_parser()\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers', 'slicer', 'qt') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
