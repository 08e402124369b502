"""Medical image input: volumes, slices, windowing, object masks and Wonder3D framing.

numpy, scipy, scikit-image, SimpleITK and pydicom only; no torch, no Slicer.

Modules, in the order the data flows through them:

* :mod:`.io` — :class:`~.io.Volume` and :func:`~.io.read_volume` (DICOM file or folder,
  NIfTI, NRRD, MHA/MHD), LPS on disk ↔ RAS in memory;
  :mod:`.dicom` and :mod:`.dicom_pixels` — the DICOM specifics;
* :mod:`.slicing` — :class:`~.slicing.Slice` with its own 2D → RAS matrix;
* :mod:`.windowing` — DICOM window, presets, automatic window, 8 bit;
* :mod:`.labels` and :mod:`.masks` — the object on the slice;
* :mod:`.framing` — Wonder3D's preprocessing and the frame record (``frame.json``);
* :mod:`.preview` and :mod:`.prepare` — ``wonder3dmed prepare`` as library calls.
"""
