"""Result folders appear whole or not at all, and --overwrite replaces only an earlier result."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from Wonder3DMedLib.demo import DEMO_MARKER, adopt_earlier_demo_output, is_demo_output, mark_demo_output
from Wonder3DMedLib.errors import OutputError
from Wonder3DMedLib.output_folder import MANIFEST_NAME, StagedOutputFolder, foreign_entries


def _finished(target, names=("report.json", "surface.stl"), overwrite=False):
    staged = StagedOutputFolder(target, overwrite=overwrite)
    for name in names:
        (staged.path / name).write_text(name)
    return staged.commit()


def test_a_finished_folder_lists_what_it_holds(tmp_path):
    out = _finished(tmp_path / "out")
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["entries"] == ["report.json", "surface.stl"] and foreign_entries(out) == []
    assert not list(tmp_path.glob(".*partial*"))


def test_overwrite_replaces_an_earlier_result_and_nothing_else(tmp_path):
    out = _finished(tmp_path / "out")
    with pytest.raises(OutputError, match="not empty"):
        StagedOutputFolder(out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"did not write \(notes.txt\)"):
        StagedOutputFolder(out, overwrite=True)
    (out / "notes.txt").unlink()
    assert _finished(out, names=("surface.stl",), overwrite=True) == out.resolve()
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "surface.stl"]


def test_a_folder_without_a_manifest_is_never_replaced(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for index in range(7):
        (folder / f"scan{index}.nii.gz").write_text("")
    with pytest.raises(OutputError, match=r"\(scan0.nii.gz, .*scan4.nii.gz and 2 more\)"):
        StagedOutputFolder(folder, overwrite=True)
    (folder / MANIFEST_NAME).write_text("not json")
    assert len(foreign_entries(folder)) == 7


def test_the_demo_may_replace_its_own_earlier_output(tmp_path):
    out = _finished(tmp_path / "demo")
    mark_demo_output(out, SimpleNamespace(extra={"demo": "test"}))
    assert is_demo_output(out) and foreign_entries(out) == []
    StagedOutputFolder(out, replaceable=is_demo_output).abort()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="did not write"):
        StagedOutputFolder(out, replaceable=is_demo_output)
    assert (out / DEMO_MARKER).is_file()


def test_a_demo_folder_from_before_manifests_is_adopted_only_if_it_holds_demo_files(tmp_path):
    earlier = tmp_path / "wonder3dmed_demo"
    (earlier / "views").mkdir(parents=True)
    for name in (DEMO_MARKER, "report.html", "report.json", "surface.stl", "frame.json"):
        (earlier / name).write_text(name)
    assert adopt_earlier_demo_output(earlier) and foreign_entries(earlier) == []
    StagedOutputFolder(earlier, replaceable=is_demo_output).abort()
    assert not adopt_earlier_demo_output(earlier), "adopted once"

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in (DEMO_MARKER, "report.html", "thesis.docx"):
        (mixed / name).write_text(name)
    assert not adopt_earlier_demo_output(mixed)
    with pytest.raises(OutputError, match=r"did not write \(.*thesis.docx\)"):
        StagedOutputFolder(mixed, replaceable=is_demo_output)
