"""The extension is packaged the way the Slicer build and the Extensions Index expect."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from PIL import Image

from conftest import REPO_ROOT

LIB = REPO_ROOT / "Wonder3DMedLib"
MODULE = REPO_ROOT / "Wonder3DMed"

# Accepted categories of Slicer/ExtensionsIndex scripts/check_description_files.py (subset).
ACCEPTED_CATEGORIES = {"Surface Models", "Segmentation", "Planning", "Quantification", "Utilities", "Shape Analysis"}
CATALOG_KEYS = {"$schema", "build_dependencies", "build_subdirectory", "category", "scm_revision", "scm_type",
                "scm_url", "enabled", "tier"}


def cmake_list(cmake_file: Path, variable: str) -> list[str]:
    """Entries of a ``set(VARIABLE ...)`` block of a CMakeLists.txt."""
    text = cmake_file.read_text()
    match = re.search(rf"set\(\s*{variable}\b(.*?)\)", text, re.S)
    assert match, f"{cmake_file} has no set({variable} ...)"
    return [item for item in match.group(1).split() if not item.startswith("#")]


def cmake_variable(text: str, name: str) -> str:
    match = re.search(rf'set\(\s*{name}\s+"([^"]*)"\s*\)', text)
    assert match, f"set({name} ...) missing"
    return match.group(1)


def test_design_card_layout():
    for name in ("CMakeLists.txt", "README.md", "LICENSE", "pyproject.toml", ".ci/run", "SlicerWonder3DMed.json"):
        assert (REPO_ROOT / name).is_file(), name
    for name in ("Wonder3DMed", "Wonder3DMedLib", "Resources", "Testing", "benchmarks"):
        assert (REPO_ROOT / name).is_dir(), name
    assert "Apache License" in (REPO_ROOT / "LICENSE").read_text()
    assert (REPO_ROOT / ".ci/run").stat().st_mode & 0o111, ".ci/run must be executable"


def test_every_library_file_is_installed():
    """A .py missing from the CMake list ships a broken module; a listed file that is gone breaks the build."""
    listed = set(cmake_list(LIB / "CMakeLists.txt", "MODULE_PYTHON_SCRIPTS"))
    on_disk = {p.relative_to(LIB).as_posix() for p in LIB.rglob("*.py") if "__pycache__" not in p.parts}
    assert on_disk - listed == set(), "Python files not listed in Wonder3DMedLib/CMakeLists.txt"
    assert listed - on_disk == set(), "listed in Wonder3DMedLib/CMakeLists.txt but missing"
    resources = set(cmake_list(LIB / "CMakeLists.txt", "MODULE_PYTHON_RESOURCES"))
    data_files = {
        p.relative_to(LIB).as_posix()
        for p in LIB.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and p.name != "CMakeLists.txt" and "__pycache__" not in p.parts
    }
    assert data_files == resources, "data files of the library and MODULE_PYTHON_RESOURCES differ"


def test_module_files_and_resources_exist():
    scripts = cmake_list(MODULE / "CMakeLists.txt", "MODULE_PYTHON_SCRIPTS")
    resources = cmake_list(MODULE / "CMakeLists.txt", "MODULE_PYTHON_RESOURCES")
    assert scripts == ["${MODULE_NAME}.py"]
    expanded = [r.replace("${MODULE_NAME}", "Wonder3DMed") for r in resources]
    assert "Resources/UI/Wonder3DMed.ui" in expanded and "Resources/Icons/Wonder3DMed.png" in expanded
    for resource in expanded:
        assert (MODULE / resource).is_file(), resource
    text = (MODULE / "CMakeLists.txt").read_text()
    assert "WITH_GENERIC_TESTS" in text and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text
    assert "WITH_SUBDIR" in (LIB / "CMakeLists.txt").read_text()


def test_module_classes_and_ui_widgets():
    """The module file has the template's classes, and every ``self.ui.<name>`` exists in the .ui."""
    source = (MODULE / "Wonder3DMed.py").read_text()
    tree = ast.parse(source)
    classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    for expected in ("Wonder3DMed", "Wonder3DMedParameterNode", "Wonder3DMedWidget", "Wonder3DMedLogic", "Wonder3DMedTest"):
        assert expected in classes
    ui = (MODULE / "Resources/UI/Wonder3DMed.ui").read_text()
    widget_names = set(re.findall(r'<widget class="[^"]+" name="([^"]+)"', ui))
    used = set(re.findall(r"self\.ui\.(\w+)", source))
    assert used, "the widget uses no ui elements"
    assert used <= widget_names, f"missing in the .ui: {used - widget_names}"
    bound = set(re.findall(r'name="SlicerParameterName" stdset="0">\s*<string>(\w+)</string>', ui))
    annotations = {
        node.target.id
        for cls in tree.body
        if isinstance(cls, ast.ClassDef) and cls.name == "Wonder3DMedParameterNode"
        for node in cls.body
        if isinstance(node, ast.AnnAssign)
    }
    assert bound and bound <= annotations, f"SlicerParameterName without a parameter: {bound - annotations}"


def test_extension_metadata_is_consistent():
    cmake = (REPO_ROOT / "CMakeLists.txt").read_text()
    project = re.search(r"project\((\w+)\)", cmake).group(1)
    catalog_path = REPO_ROOT / f"{project}.json"
    assert catalog_path.is_file(), "the Extensions Index file must be named like project()"
    catalog = json.loads(catalog_path.read_text())
    assert set(catalog) <= CATALOG_KEYS
    assert {"$schema", "category", "scm_url"} <= set(catalog)
    assert catalog["category"] in ACCEPTED_CATEGORIES
    assert "slicer" in catalog["scm_url"].rsplit("/", 1)[-1].lower()
    assert catalog["build_dependencies"] == cmake_variable(cmake, "EXTENSION_DEPENDS").split() == ["PyTorch"]
    for line in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})", "add_subdirectory(Wonder3DMedLib)",
                 "add_subdirectory(Wonder3DMed)", "include(${Slicer_EXTENSION_GENERATE_CONFIG})",
                 "include(${Slicer_EXTENSION_CPACK})"):
        assert line in cmake


@pytest.mark.parametrize("variable,min_size", [("EXTENSION_ICONURL", (128, 128)), ("EXTENSION_SCREENSHOTURLS", (300, 300))])
def test_icon_and_screenshot_urls_point_at_images_in_the_repo(variable, min_size):
    cmake = (REPO_ROOT / "CMakeLists.txt").read_text()
    for url in cmake_variable(cmake, variable).split():
        assert url.startswith("https://raw.githubusercontent.com/")
        relative = url.split("/main/", 1)[1]
        with Image.open(REPO_ROOT / relative) as image:
            assert image.format == "PNG"
            assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
            if variable == "EXTENSION_ICONURL":
                assert image.size == (128, 128)


def test_python_packaging():
    meta = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["scripts"]["wonder3dmed"] == "Wonder3DMedLib.cli:main"
    names = {re.split(r"[<>=!~\[ ]", dep)[0].lower() for dep in project["dependencies"]}
    for required in ("torch", "diffusers", "transformers", "safetensors", "pydicom", "simpleitk", "vtk", "numpy",
                     "scikit-image", "trimesh"):
        assert required in names, required
    assert all(re.search(r">=", dep) for dep in project["dependencies"]), "runtime dependencies need lower bounds"
    test_extra = project["optional-dependencies"]["test"]
    assert "vtk==9.6.2" in test_extra and any(dep.startswith("slicer-core") for dep in test_extra)
    assert meta["tool"]["pytest"]["ini_options"]["testpaths"] == ["Testing/Python"]


def readme_command(marker: str) -> str:
    """The fenced command after ``<!-- marker -->`` in the README."""
    text = (REPO_ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)\n```", text, re.S)
    assert match, f"README has no {marker} block"
    return match.group(1).strip()


def test_readme_has_the_two_setup_commands_and_ci_runs_the_test_one():
    text = (REPO_ROOT / "README.md").read_text()
    assert re.findall(r"<!-- (\w+-command) -->", text) == ["main-command", "test-command"]
    main_command, test_command = readme_command("main-command"), readme_command("test-command")
    for command in (main_command, test_command):
        assert "\n" not in command and "pip install torch==2.13.0" in command
    assert main_command.endswith("wonder3dmed demo")
    assert test_command.endswith("python -m pytest") and '".[test]"' in test_command
    extracted = subprocess.run(
        ["awk", re.search(r"awk '(.*?)' README.md", (REPO_ROOT / ".ci/run").read_text(), re.S).group(1), "README.md"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert extracted == test_command
