"""Pictures of a surface in patient space, rendered offscreen (no display, no GPU needed).

Data form: meshes as :class:`trimesh.Trimesh` in RAS millimetres in, RGB images
``(H, W, 3) uint8`` out.

VTK renders through EGL or OSMesa (Mesa's software rasteriser works), never through an X
server. Views are orthographic and named after where the camera stands relative to the
patient (anterior: looking at the face, the patient's right on the image's left).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

__all__ = ["VIEW_DIRECTIONS", "MeshRender", "offscreen_render_window", "render_mesh"]

#: camera position direction (RAS unit vector from the target) and view-up vector.
VIEW_DIRECTIONS = {
    "anterior": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "superior": ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0)),
    "left": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "right": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "posterior": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    "inferior": ((0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
}

_SURFACE_COLOR = (0.93, 0.78, 0.62)
_REFERENCE_COLOR = (0.85, 0.1, 0.1)
_PLANE_COLOR = (0.2, 0.55, 0.95)


@dataclass(frozen=True, eq=False)
class MeshRender:
    """One rendered view.

    Attributes
    ----------
    view : str
        Key of :data:`VIEW_DIRECTIONS`.
    image : (H, W, 3) uint8
    """

    view: str
    image: np.ndarray


def offscreen_render_window():
    """A VTK render window that draws without a display (EGL, else OSMesa).

    Raises
    ------
    RuntimeError
        Neither EGL nor OSMesa can create an OpenGL context on this machine.
    """
    import vtk  # noqa: F401  (registers the VTK object factories)
    from vtkmodules import vtkRenderingOpenGL2

    for name in ("vtkEGLRenderWindow", "vtkOSOpenGLRenderWindow"):
        window_class = getattr(vtkRenderingOpenGL2, name, None)
        if window_class is None:
            continue
        window = window_class()
        window.SetOffScreenRendering(1)
        if window.SupportsOpenGL():
            return window
    raise RuntimeError(
        "no offscreen OpenGL: install Mesa's EGL (Debian: libegl1 libegl-mesa0) or OSMesa (libosmesa6)"
    )


def _polydata(mesh: trimesh.Trimesh):
    import vtk
    from vtk.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray

    polydata = vtk.vtkPolyData()
    points = vtk.vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(mesh.vertices, dtype=np.float64), deep=True))
    polydata.SetPoints(points)
    cells = vtk.vtkCellArray()
    faces = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    cells.SetData(
        numpy_to_vtkIdTypeArray(np.arange(0, 3 * len(faces) + 1, 3, dtype=np.int64), deep=True),
        numpy_to_vtkIdTypeArray(faces.ravel(), deep=True),
    )
    polydata.SetPolys(cells)
    if mesh.visual.kind == "vertex":
        colors = numpy_to_vtk(np.ascontiguousarray(mesh.visual.vertex_colors[:, :3]), deep=True)
        colors.SetName("Colors")
        polydata.GetPointData().SetScalars(colors)
    return polydata


def render_mesh(
    mesh: trimesh.Trimesh,
    view: str,
    *,
    reference: trimesh.Trimesh | None = None,
    plane: tuple[np.ndarray, np.ndarray] | None = None,
    size: tuple[int, int] = (420, 420),
    use_vertex_colors: bool = True,
) -> MeshRender:
    """Render a mesh (RAS mm) from one side, with the reference's outline drawn over it.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        The surface to show, RAS mm; its vertex colours are used when present.
    view : str
        One of :data:`VIEW_DIRECTIONS`.
    reference : trimesh.Trimesh, optional
        Drawn as its silhouette outline (red) seen from the same camera.
    plane : (point, normal), optional
        A plane (RAS mm) drawn as a translucent square (e.g. the input slice).
    size : (width, height)
    use_vertex_colors : bool

    Returns
    -------
    MeshRender
    """
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    if view not in VIEW_DIRECTIONS:
        raise ValueError(f"view must be one of {sorted(VIEW_DIRECTIONS)}, got {view!r}")
    renderer = vtk.vtkRenderer()
    renderer.SetBackground(1.0, 1.0, 1.0)
    bounds_meshes = [mesh] + ([reference] if reference is not None and len(reference.faces) else [])
    corners = np.vstack([m.bounds for m in bounds_meshes])
    low, high = corners.min(0), corners.max(0)
    centre = (low + high) / 2.0
    extent = float(np.linalg.norm(high - low))

    mapper = vtk.vtkPolyDataMapper()
    mapper.SetInputData(_polydata(mesh))
    has_colors = use_vertex_colors and mesh.visual.kind == "vertex"
    mapper.SetScalarVisibility(has_colors)
    actor = vtk.vtkActor()
    actor.SetMapper(mapper)
    surface = actor.GetProperty()
    surface.SetColor(*_SURFACE_COLOR)
    surface.SetInterpolationToGouraud()
    surface.SetAmbient(0.25)
    surface.SetDiffuse(0.75)
    surface.SetSpecular(0.15)
    surface.SetSpecularPower(20.0)
    renderer.AddActor(actor)

    camera = renderer.GetActiveCamera()
    direction, up = VIEW_DIRECTIONS[view]
    camera.SetFocalPoint(*centre)
    camera.SetPosition(*(centre + np.asarray(direction) * max(extent, 1.0) * 3.0))
    camera.SetViewUp(*up)
    camera.ParallelProjectionOn()
    camera.SetParallelScale(max(extent, 1.0) * 0.55)

    if reference is not None and len(reference.faces):
        silhouette = vtk.vtkPolyDataSilhouette()
        silhouette.SetInputData(_polydata(reference))
        silhouette.SetCamera(camera)
        silhouette.SetEnableFeatureAngle(0)
        outline_mapper = vtk.vtkPolyDataMapper()
        outline_mapper.SetInputConnection(silhouette.GetOutputPort())
        outline_mapper.SetScalarVisibility(False)
        outline_mapper.SetResolveCoincidentTopologyToPolygonOffset()
        outline = vtk.vtkActor()
        outline.SetMapper(outline_mapper)
        outline.GetProperty().SetColor(*_REFERENCE_COLOR)
        outline.GetProperty().SetLineWidth(2.5)
        outline.GetProperty().SetLighting(False)
        renderer.AddActor(outline)

    if plane is not None:
        point, normal = (np.asarray(v, dtype=np.float64) for v in plane)
        source = vtk.vtkPlaneSource()
        normal = normal / np.linalg.norm(normal)
        helper = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        axis1 = np.cross(normal, helper)
        axis1 /= np.linalg.norm(axis1)
        axis2 = np.cross(normal, axis1)
        half = extent * 0.6
        origin = point - half * axis1 - half * axis2
        source.SetOrigin(*origin)
        source.SetPoint1(*(origin + 2 * half * axis1))
        source.SetPoint2(*(origin + 2 * half * axis2))
        plane_mapper = vtk.vtkPolyDataMapper()
        plane_mapper.SetInputConnection(source.GetOutputPort())
        plane_actor = vtk.vtkActor()
        plane_actor.SetMapper(plane_mapper)
        plane_actor.GetProperty().SetColor(*_PLANE_COLOR)
        plane_actor.GetProperty().SetOpacity(0.25)
        renderer.AddActor(plane_actor)

    renderer.ResetCameraClippingRange()
    window = offscreen_render_window()
    window.SetSize(*size)
    window.SetMultiSamples(4)
    window.AddRenderer(renderer)
    window.Render()
    grabber = vtk.vtkWindowToImageFilter()
    grabber.SetInput(window)
    grabber.ReadFrontBufferOff()
    grabber.Update()
    output = grabber.GetOutput()
    width, height, _ = output.GetDimensions()
    pixels = vtk_to_numpy(output.GetPointData().GetScalars()).reshape(height, width, -1)[::-1, :, :3]
    window.Finalize()
    return MeshRender(view=view, image=np.ascontiguousarray(pixels, dtype=np.uint8))
