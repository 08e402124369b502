"""The NeuS-ortho backend behind the ``--recon`` contract: field, mesh and CLI on tiny, short runs.

Runs are a handful of steps of the CPU preset on 64² views of a sphere (a CPU step costs
≈ 1–2 s): they prove the wiring (frames, signs, colours, options, errors), not the accuracy,
which ``Testing/Python/test_recon_neus_train.py`` and ``benchmarks/bench_recon.py`` measure.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import trimesh

from Wonder3DMedLib.cli import main
from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.reconstruction.backends import ReconstructedField, reconstruct_field, reconstruct_mesh
from Wonder3DMedLib.reconstruction.neus import NeusConfig
from Wonder3DMedLib.reconstruction.neus.backend import backend_config
from Wonder3DMedLib.reconstruction.render import render_views
from Wonder3DMedLib.reconstruction.shapes import frame_mesh, sphere
from Wonder3DMedLib.views import save_views

STEPS = 8


@pytest.fixture(scope="module")
def sphere_views():
    return render_views(frame_mesh(sphere(subdivisions=4)), size=64, description="sphere")


@pytest.fixture(scope="module")
def reconstruction(sphere_views):
    return reconstruct_mesh(sphere_views, method="neus", resolution=40, steps=STEPS, device="cpu")


def test_field_keeps_the_backend_contract(reconstruction):
    field = reconstruction.field
    assert isinstance(field, ReconstructedField)
    assert field.method == "neus" and field.refine and callable(field.sdf)
    assert field.details["steps"] == STEPS and field.details["device"] == "cpu"
    inside, outside = field.sdf(np.array([[0.0, 0.0, 0.0], [0.95, 0.95, 0.95]]))
    assert inside < 0 < outside, "negative inside, model frame"
    points = np.array([[0.7, 0.0, 0.0], [0.0, -0.7, 0.0]])
    rgb = field.colors(points, np.eye(3)[:2])
    assert rgb.shape == (2, 3) and np.all((rgb >= 0) & (rgb <= 1))


def test_dispatch_reaches_the_neus_package(sphere_views, monkeypatch):
    """``backends.reconstruct_field(method='neus')`` calls the package's ``reconstruct_field`` with the options."""
    from Wonder3DMedLib.reconstruction import neus

    seen = {}

    def fake(views, *, resolution, progress=None, **options):
        seen.update(options, resolution=resolution)
        return ReconstructedField(sdf=lambda points: np.zeros(len(points)), method="neus")

    monkeypatch.setattr(neus, "reconstruct_field", fake)
    reconstruct_field(sphere_views, method="neus", resolution=33, steps=5, device="cpu")
    assert seen == {"resolution": 33, "steps": 5, "device": "cpu"}


def test_mesh_is_closed_and_coloured_by_the_colour_network(reconstruction):
    result = reconstruction
    mesh = result.mesh
    assert mesh.is_watertight and mesh.volume > 0
    assert result.field.method == "neus" and set(result.timings_s) == {"field", "mesh", "colours"}
    assert mesh.visual.vertex_colors.shape == (len(mesh.vertices), 4)
    radius = np.linalg.norm(mesh.vertices, axis=1)
    assert 0.3 < np.median(radius) < 1.0, "a blob around the sphere after a few steps"


def test_steps_compress_the_device_default():
    import torch

    config = backend_config(torch.device("cpu"), steps=300)
    assert config.steps == 300 and config.image_size is None, "the CPU preset, compressed"
    assert config.hash_level_update_steps == NeusConfig.cpu(steps=300).hash_level_update_steps
    assert backend_config(torch.device("cuda"), steps=None) == NeusConfig()
    oracle = backend_config(torch.device("cpu"), steps=300, source="oracle")
    assert oracle == dataclasses.replace(config, view_weights=(1.0,) * 6), "rendered views: equal view weights"
    given = NeusConfig.cpu(steps=500)
    assert backend_config(torch.device("cpu"), config=given, source="oracle") is given, "an explicit config is kept"
    with pytest.raises(InputError, match="positive integer"):
        backend_config(torch.device("cpu"), steps=0)


def test_cli_runs_neus_with_a_reduced_step_count(tmp_path, sphere_views, capsys):
    folder = tmp_path / "views"
    save_views(sphere_views, folder)
    out = tmp_path / "sphere.ply"
    code = main(["mesh", str(folder), "--out", str(out), "--recon", "neus", "--neus-steps", "3",
                 "--mc-resolution", "32", "--device", "cpu"])
    assert code == 0
    assert trimesh.load(out, process=False).is_watertight
    assert "neus reconstruction" in capsys.readouterr().err


def test_cli_refuses_neus_steps_for_the_fast_backend(tmp_path, sphere_views, capsys):
    folder = tmp_path / "views"
    save_views(sphere_views, folder)
    code = main(["mesh", str(folder), "--out", str(tmp_path / "x.ply"), "--neus-steps", "20"])
    assert code == 2
    assert "--neus-steps only applies to --recon neus" in capsys.readouterr().err
    assert not (tmp_path / "x.ply").exists()
