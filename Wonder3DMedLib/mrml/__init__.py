"""The only Slicer-aware part of Wonder3DMedLib.

Imports ``slicer`` (MRML, logic and VTK classes) and ``vtk``, never ``qt`` or ``ctk``.
Every function takes the MRML scene as an argument; nothing here uses
``slicer.mrmlScene``, ``slicer.app`` or ``slicer.modules``, so the same code runs in
3D Slicer and against slicer-core from PyPI.
"""
