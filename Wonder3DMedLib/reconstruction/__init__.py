"""Wonder3D's second stage: six orthographic views -> a watertight surface.

Submodules (import them directly; this package imports nothing heavy):

* :mod:`~Wonder3DMedLib.reconstruction.cameras` — the six fixed orthographic cameras,
  rays, OpenGL/OpenCV conventions, normal-map frames, masks and view weights;
* :mod:`~Wonder3DMedLib.reconstruction.render` — ground-truth views of a triangle mesh
  (tests, benchmark and the product's oracle mode);
* :mod:`~Wonder3DMedLib.reconstruction.neus` — the NeuS-ortho backend (Wonder3D's own
  reconstruction in pure PyTorch) returning a queryable SDF;
* :mod:`~Wonder3DMedLib.reconstruction.fast` — the CPU backend (visual hull + normal
  integration + fusion) returning an SDF grid;
* :mod:`~Wonder3DMedLib.reconstruction.meshing` — SDF grid -> closed, cleaned mesh with
  vertex colours;
* :mod:`~Wonder3DMedLib.reconstruction.backends` — ``--recon`` name -> backend.
"""

__all__: list[str] = []
