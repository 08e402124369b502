"""Wonder3DMed library: one medical image slice to a 3D surface in patient space.

The package is importable without torch, Qt or Slicer; heavy dependencies are
imported by the subpackages that need them (``diffusion`` and
``reconstruction.neus`` need torch, ``mrml`` needs slicer-core).

Research software, not for diagnosis.
"""

__version__ = "0.1.0"

NOT_FOR_DIAGNOSIS = (
    "Research tool: generated surfaces are plausible shapes, not measurements of the patient. "
    "Not for diagnosis or treatment planning."
)

__all__ = ["__version__", "NOT_FOR_DIAGNOSIS"]
