"""Shared pytest fixtures: reference data, real MRI from Debian packages, a real MRML scene."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Environment variable overriding where the reference fixtures are read from.
REFERENCE_ENV = "WONDER3DMED_REFERENCE_DIR"

#: Debian package mricron-data: Colin27 T1 (ch2), brain mask (ch2bet) and AAL atlas, same grid.
MRICRON_TEMPLATES = Path("/usr/share/mricron/templates")

#: Debian package insighttoolkit5-examples: anisotropic, oblique T1 with tissue labels.
ITK_EXAMPLE_DATA = Path("/usr/share/doc/insighttoolkit5-examples/examples/Data")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``shared/fixtures`` beside the project (or ``$WONDER3DMED_REFERENCE_DIR``)."""
    path = Path(os.environ.get(REFERENCE_ENV, REPO_ROOT.parent / "shared" / "fixtures"))
    if not path.is_dir():
        pytest.skip(f"reference fixtures not found at {path}; set {REFERENCE_ENV} to the shared/fixtures folder")
    return path


@pytest.fixture(scope="session")
def mricron_templates() -> Path:
    """Colin27 + AAL from Debian's mricron-data (``apt-get install mricron-data``)."""
    if not (MRICRON_TEMPLATES / "aal.nii.gz").is_file():
        pytest.skip(f"Debian package mricron-data not installed ({MRICRON_TEMPLATES} missing)")
    return MRICRON_TEMPLATES


@pytest.fixture(scope="session")
def itk_example_data() -> Path:
    """ITK example images from Debian's insighttoolkit5-examples."""
    if not (ITK_EXAMPLE_DATA / "KmeansTest_T1UCharRaw.nii.gz").is_file():
        pytest.skip(f"Debian package insighttoolkit5-examples not installed ({ITK_EXAMPLE_DATA} missing)")
    return ITK_EXAMPLE_DATA


@pytest.fixture(scope="session")
def headless():
    """The process-wide slicer-core scene and module logics (converter rules registered once)."""
    pytest.importorskip("slicer", reason="slicer-core is not installed (pip install -e '.[test]')")
    from Wonder3DMedLib.mrml.headless import headless_slicer

    return headless_slicer()


@pytest.fixture
def mrml_scene(headless):
    """A real, empty MRML scene for one test (cleared before and after)."""
    headless.clear()
    yield headless.scene
    headless.clear()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread (and do not fight other work on a shared CPU)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
