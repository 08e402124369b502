"""Medical image input: volumes, slices, windowing, object masks and Wonder3D framing.

numpy, SimpleITK and pydicom only; no torch, no Slicer.
"""
