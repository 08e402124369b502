"""Windows follow the DICOM VOI LUT formulas (checked against pydicom's implementation) and the usual presets."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_windowing

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.imaging.io import read_volume
from Wonder3DMedLib.imaging.windowing import (
    PRESETS,
    Window,
    apply_window,
    auto_window,
    choose_window,
    parse_window,
    to_uint8,
)


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
@pytest.mark.parametrize("center,width", [(600.0, 1600.0), (1000.5, 3.0), (-20.0, 1.0)])
def test_voi_functions_match_pydicom(function, center, width):
    dataset = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    dataset.WindowCenter, dataset.WindowWidth, dataset.VOILUTFunction = center, width, function
    values = np.concatenate([dataset.pixel_array.ravel(), np.arange(-40, 40), [center - 0.5, center + 0.5]])
    with np.errstate(over="ignore"):  # pydicom's sigmoid overflows to the right limit
        reference = apply_windowing(values.astype(np.float64), dataset)
    low, high = -(2**15), 2**15 - 1  # pydicom's output range for signed 16-bit data
    expected = (reference - low) / (high - low)
    ours = apply_window(values, Window(center, width, source="DICOM", function=function))
    assert ours.dtype == np.float32
    assert np.allclose(ours, expected, atol=1e-6)


def test_dicom_window_is_the_default_and_explicit_choices_win():
    volume = read_volume(get_testdata_file("MR_small.dcm"))
    pixels = volume.array[0]
    chosen = choose_window(pixels, None, dicom_window=volume.dicom_window)
    assert (chosen.center, chosen.width, chosen.source, chosen.function) == (600.0, 1600.0, "DICOM", "LINEAR")
    assert choose_window(pixels, "bone", dicom_window=volume.dicom_window).source == "preset bone"
    assert choose_window(pixels, "30,60", dicom_window=volume.dicom_window).describe() == "center 30, width 60 (manual)"
    assert choose_window(pixels, None).source == "auto, p0.5–p99.5"
    # a DICOM LINEAR window narrower than 1 cannot use the LINEAR formula: the exact ramp is used
    assert choose_window(pixels, None, dicom_window=(0.5, 0.25)).function == "LINEAR_EXACT"


def test_presets_and_their_spellings():
    assert PRESETS == {"brain": (40.0, 80.0), "soft-tissue": (40.0, 400.0), "bone": (480.0, 2500.0),
                       "lung": (-600.0, 1500.0)}
    for spelling in ("soft-tissue", "Soft_Tissue", "softtissue", "soft tissue"):
        assert (parse_window(spelling).center, parse_window(spelling).width) == (40.0, 400.0)
    hu = np.array([-1000.0, -600.0, 0.0, 40.0, 80.0, 1000.0])
    assert np.allclose(apply_window(hu, parse_window("brain")), [0, 0, 0, 0.5, 1, 1])
    assert np.allclose(apply_window(hu, parse_window("lung")), [0.2333333, 0.5, 0.9, 0.9266667, 0.9533333, 1])


def test_bad_windows_are_refused():
    with pytest.raises(InputError, match=r"--window 'liver' is neither a preset \(brain, soft-tissue, bone, lung\) "
                       r"nor CENTER,WIDTH"):
        parse_window("liver")
    with pytest.raises(InputError, match="the width must be greater than 0"):
        parse_window("40,0")
    with pytest.raises(InputError, match="neither a preset"):
        parse_window("40;400")


def test_automatic_window_spans_the_percentiles():
    values = np.arange(1001, dtype=float)
    window = auto_window(values)
    assert window.center == pytest.approx(500.0) and window.width == pytest.approx(990.0)
    grey = apply_window(values, window)
    assert grey[5] == pytest.approx(0.0, abs=1e-6) and grey[995] == pytest.approx(1.0)
    flat = auto_window(np.full((4, 4), 7.0))
    assert (flat.center, flat.width) == (7.0, 1.0)
    with pytest.raises(InputError, match="no finite values"):
        auto_window(np.full(3, np.nan))


def test_eight_bit_output():
    grey = np.array([0.0, 0.5, 1.0, np.nan, 1 / 255, 0.499])
    assert to_uint8(grey).tolist() == [0, 128, 255, 0, 1, 127]
    assert to_uint8(apply_window(np.array([39.0]), parse_window("40,400"))).dtype == np.uint8
