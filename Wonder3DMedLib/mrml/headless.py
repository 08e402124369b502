"""Running MRML logic outside the Slicer application (slicer-core from PyPI).

In 3D Slicer the application creates the module logics once. Outside it, this module
does the minimum the rest of the bridge needs: an application logic with colour
nodes, and the Volumes, Segmentations, SubjectHierarchy and Transforms logics. They
are created **once per process**, because segmentation converter rules live in a
process-wide factory and every new Segmentations logic registers them again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import slicer

__all__ = ["HeadlessSlicer", "headless_slicer", "converter_rule_names"]


@dataclass(frozen=True, eq=False)
class HeadlessSlicer:
    """An MRML scene with the module logics Wonder3DMed uses, outside the Slicer app.

    Attributes
    ----------
    scene : slicer.vtkMRMLScene
    application_logic : slicer.vtkSlicerApplicationLogic
    logics : dict of str to vtkObject
        ``'Colors'``, ``'Volumes'``, ``'Segmentations'``, ``'SubjectHierarchy'``,
        ``'Transforms'``.
    """

    scene: slicer.vtkMRMLScene
    application_logic: slicer.vtkSlicerApplicationLogic
    logics: dict

    def clear(self) -> None:
        """Remove every node the user added, keeping singletons and default colour tables."""
        self.scene.Clear(0)


@functools.cache
def headless_slicer() -> HeadlessSlicer:
    """The process-wide headless scene and logics (created on first call)."""
    scene = slicer.vtkMRMLScene()
    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    colors = app.GetColorLogic()
    colors.SetMRMLScene(scene)
    colors.AddDefaultColorNodes()
    app.SetModuleLogic("Colors", colors)
    logics = {"Colors": colors}
    for name, cls in (
        ("Volumes", slicer.vtkSlicerVolumesLogic),
        ("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic),
        ("SubjectHierarchy", slicer.vtkSlicerSubjectHierarchyModuleLogic),
        ("Transforms", slicer.vtkSlicerTransformLogic),
    ):
        logic = cls()
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app)
        app.SetModuleLogic(name, logic)
        logics[name] = logic
    return HeadlessSlicer(scene=scene, application_logic=app, logics=logics)


def converter_rule_names() -> list[str]:
    """Names of the segmentation converter rules registered in this process."""
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    return [rule.GetName() for rule in factory.GetConverterRules()]
