"""Object masks: labelmaps on any grid are sampled in patient space, automatic masks find the object, empty is an error."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from imaging_data import rotation
from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.imaging.io import LPS_TO_RAS, Volume, read_volume, volume_from_sitk, volume_to_sitk, write_volume
from Wonder3DMedLib.imaging.labels import LabelledVolume, read_labelmap
from Wonder3DMedLib.imaging.masks import (
    auto_mask,
    box_mask,
    mask_from_file,
    mask_from_labelmap,
    parse_box,
    restrict_to_box,
)
from Wonder3DMedLib.imaging.slicing import Slice, take_slice
from Wonder3DMedLib.imaging.windowing import apply_window, auto_window


@pytest.fixture(scope="module")
def colin(mricron_templates):
    return read_volume(mricron_templates / "ch2.nii.gz"), read_labelmap(mricron_templates / "aal.nii.gz")


def slice_as_sitk_grid(source: Slice):
    """A one-slice SimpleITK image with the slice's pixel grid (for resampling onto it with ITK)."""
    ijk_to_lps = LPS_TO_RAS @ source.slice_to_ras
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    image = sitk.Image([source.shape[1], source.shape[0], 1], sitk.sitkUInt8)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((ijk_to_lps[:3, :3] / spacing).ravel().tolist())
    image.SetOrigin(ijk_to_lps[:3, 3].tolist())
    return image


def test_same_grid_labelmap_is_the_label_on_that_slice(colin):
    volume, labelled = colin
    source = take_slice(volume, "coronal", 100)
    found = mask_from_labelmap(source, labelled, "Hippocampus_L")
    reference = take_slice(Volume(labelled.volume.array == 37, labelled.volume.ijk_to_ras), "coronal", 100).pixels
    assert np.array_equal(found.mask, reference) and found.mask.sum() > 50
    assert found.description == "label 37 (Hippocampus_L) of the labelmap"


def test_labelmap_on_another_grid_matches_itk_nearest_neighbour(colin, tmp_path):
    """AAL moved onto an oblique 1.3×0.8×2.1 mm grid, then sampled on a Colin27 slice: as ITK resamples it."""
    volume, labelled = colin
    matrix = np.eye(4)
    matrix[:3, :3] = rotation("S", 14.0) @ rotation("A", -9.0) @ np.diag([1.3, 0.8, 2.1])
    matrix[:3, 3] = [-95.0, -130.0, -75.0]
    target = volume_to_sitk(Volume(np.zeros((80, 170, 150), np.uint8), matrix))
    moved = sitk.Resample(volume_to_sitk(labelled.volume), target, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    path = write_volume(volume_from_sitk(moved), tmp_path / "aal_oblique.nrrd")
    (tmp_path / "aal_oblique.txt").write_text("77 Thalamus_L\n78 Thalamus_R\n")  # colour table beside the file
    source = take_slice(volume, "axial", 80)
    found = mask_from_file(source, path, "Thalamus_L")
    expected = sitk.Resample(moved, slice_as_sitk_grid(source), sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    reference = sitk.GetArrayFromImage(expected)[0] == 77
    agreement = np.mean(found.mask == reference)
    assert agreement == 1.0 or (1 - agreement) * found.mask.size <= 2  # ties at exactly half a voxel may differ
    assert found.mask.sum() > 200


def test_labelmap_that_does_not_overlap_is_refused(colin, tmp_path):
    volume, labelled = colin
    shifted = labelled.volume.ijk_to_ras.copy()
    shifted[:3, 3] += [0.0, 0.0, 400.0]
    path = write_volume(Volume(labelled.volume.array, shifted), tmp_path / "elsewhere.nii.gz")
    with pytest.raises(InputError, match=r"the mask file does not overlap the slice: its grid covers R -90\.5 to 90\.5, "
                       r"A -125\.5 to 91\.5, S 328\.5 to 509\.5 \(RAS mm\), the slice covers .* S 9\.0 to 9\.0"):
        mask_from_file(take_slice(volume, "axial", 80), path, 77)


def test_absent_label_and_label_off_the_slice(colin):
    volume, labelled = colin
    source = take_slice(volume, "axial", 80)
    with pytest.raises(InputError, match=r"label 117 is not in the labelmap; labels present: 1 \(Precentral_L\)"):
        mask_from_labelmap(source, labelled, 117)
    with pytest.raises(InputError, match=r"label 37 \(Hippocampus_L\) has no voxel on this slice \(axial index 150\); it "
                       r"spans indices \d+ to \d+ along grid axis k") as error:
        mask_from_labelmap(take_slice(volume, "axial", 150), labelled, "Hippocampus_L")
    first, last = (int(v) for v in str(error.value).split("spans indices ")[1].split(" along")[0].split(" to "))
    ks = np.nonzero((labelled.volume.array == 37).any(axis=(1, 2)))[0]
    assert (first, last) == (ks.min(), ks.max())


def test_automatic_mask_is_the_brain_on_skull_stripped_mri(mricron_templates):
    volume = read_volume(mricron_templates / "ch2bet.nii.gz")
    source = take_slice(volume, "axial", 90)
    found = auto_mask(source, apply_window(source.pixels, auto_window(source.pixels)))
    brain = source.pixels > 0
    assert (found.mask & brain).sum() / (found.mask | brain).sum() > 0.99
    assert found.description.startswith("automatic: Otsu threshold")


def synthetic_slice() -> Slice:
    pixels = np.zeros((40, 50))
    rows, cols = np.mgrid[:40, :50]
    pixels[(rows - 20) ** 2 + (cols - 22) ** 2 < 12**2] = 100.0
    pixels[(rows - 20) ** 2 + (cols - 22) ** 2 < 4**2] = 0.0  # a hole
    pixels[2:5, 44:48] = 100.0  # a small separate blob
    volume = Volume(pixels[None], np.eye(4))
    return take_slice(volume, "k", 0)


def test_automatic_mask_keeps_the_largest_component_and_fills_holes():
    source = synthetic_slice()
    rows, cols = np.mgrid[:40, :50]
    disk = (rows - 20) ** 2 + (cols - 22) ** 2 < 12**2
    found = auto_mask(source, source.pixels / 100.0)
    assert np.array_equal(found.mask, disk)
    by_threshold = auto_mask(source, source.pixels / 100.0, threshold=50.0)
    assert np.array_equal(by_threshold.mask, disk) and "threshold 50" in by_threshold.description
    in_box = auto_mask(source, source.pixels / 100.0, box=(40, 0, 49, 8))
    assert in_box.mask.sum() == 12 and in_box.box == (44, 2, 47, 4)


def test_empty_masks_are_errors():
    source = synthetic_slice()
    with pytest.raises(InputError, match="the object mask is empty: the windowed slice is uniform inside box"):
        auto_mask(source, source.pixels / 100.0, box=(0, 30, 5, 39))
    with pytest.raises(InputError, match="the object mask is empty: no pixel is above the threshold 150"):
        auto_mask(source, source.pixels / 100.0, threshold=150.0)
    disk = auto_mask(source, source.pixels / 100.0)
    with pytest.raises(InputError, match="the object mask is empty: automatic: .* within box columns 0–3, rows 0–3"):
        restrict_to_box(disk, (0, 0, 3, 3))


def test_boxes():
    assert parse_box("3, 4,10,12") == (3, 4, 10, 12)
    mask = box_mask((20, 30), (3, 4, 10, 12))
    assert mask.mask.sum() == 8 * 9 and mask.box == (3, 4, 10, 12)
    with pytest.raises(InputError, match=r"is not inside the slice: columns run 0 to 29, rows 0 to 19"):
        box_mask((20, 30), (3, 4, 30, 12))
    with pytest.raises(InputError, match="a box is COL0,ROW0,COL1,ROW1 in slice pixels"):
        parse_box("1,2,3")


def test_labelled_volume_without_path_has_plain_messages():
    labelled = LabelledVolume(Volume(np.zeros((2, 3, 4), np.uint8), np.eye(4)))
    with pytest.raises(InputError, match="the labelmap is empty"):
        mask_from_labelmap(take_slice(labelled.volume, "k", 0), labelled, None)
