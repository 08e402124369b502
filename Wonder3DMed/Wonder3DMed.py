import json
import logging
import os
import shutil
import subprocess
import sys

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import parameterNodeWrapper

from slicer import vtkMRMLScalarVolumeNode

try:
    import Wonder3DMedLib
except ImportError:
    # Source-tree use ("Additional module paths" pointing at Wonder3DMed/): the library is a
    # sibling folder. After a build both sit in qt-scripted-modules and this is not needed.
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))
    import Wonder3DMedLib


#
# Wonder3DMed
#


class Wonder3DMed(ScriptedLoadableModule):
    """Module metadata. See Wonder3DMedLib for the processing (it never imports Qt)."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Wonder3DMed")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Surface Models")]
        self.parent.dependencies = []
        self.parent.contributors = ["Wonder3DMed developers"]
        self.parent.helpText = _(
            "Turns the object on one slice of a volume into a 3D surface with Wonder3D multiview "
            "diffusion and surface reconstruction, places it in patient (RAS) space over that slice and "
            "compares it with segmentations. "
            "See <a href=\"https://github.com/wonder3dmed/SlicerWonder3DMed\">the project page</a>.<br>"
            "<b>{notice}</b>"
        ).format(notice=Wonder3DMedLib.NOT_FOR_DIAGNOSIS)
        self.parent.acknowledgementText = _(
            "Wonder3D (Long et al., CVPR 2024) multiview cross-domain diffusion, re-implemented for "
            "medical images. Built on 3D Slicer, PyTorch, diffusers, SimpleITK and trimesh."
        )


#
# Wonder3DMedParameterNode
#


@parameterNodeWrapper
class Wonder3DMedParameterNode:
    """
    The parameters needed by the module.

    inputVolume - The volume whose slice is turned into a surface.
    """

    inputVolume: vtkMRMLScalarVolumeNode


#
# Wonder3DMedWidget
#


class Wonder3DMedWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel. Thin: every action is one call of Wonder3DMedLogic."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/Wonder3DMed.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.noticeLabel.text = Wonder3DMedLib.NOT_FOR_DIAGNOSIS

        self.logic = Wonder3DMedLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.checkSetupButton.connect("clicked(bool)", self.onCheckSetupButton)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)

    def onCheckSetupButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to check the setup."), waitCursor=True):
            report = self.logic.checkSetup()
            self.ui.statusText.plainText = report.text
            if not report.usable:
                slicer.util.warningDisplay(_("Wonder3DMed cannot run yet; see the panel for what is missing."))


#
# Wonder3DMedLogic
#


class SetupReport:
    """What `wonder3dmed doctor` said, as text and as parsed JSON."""

    def __init__(self, data: dict, text: str) -> None:
        self.data = data
        self.text = text

    @property
    def usable(self) -> bool:
        return bool(self.data.get("usable"))


class Wonder3DMedLogic(ScriptedLoadableModuleLogic):
    """Runs Wonder3DMedLib in a separate Python process, so torch never loads into Slicer.

    Can be used from scripts without the widget.
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return Wonder3DMedParameterNode(super().getParameterNode())

    @staticmethod
    def libraryParentDir() -> str:
        """Folder that holds the Wonder3DMedLib package (the worker's working directory)."""
        return os.path.dirname(os.path.dirname(os.path.abspath(Wonder3DMedLib.__file__)))

    @staticmethod
    def pythonExecutable() -> str:
        """Slicer's own Python launcher, or this interpreter when run outside the launcher."""
        return shutil.which("PythonSlicer") or sys.executable

    def runLibraryCommand(self, args: list[str], timeout: float = 300.0) -> subprocess.CompletedProcess:
        """Run `python -m Wonder3DMedLib <args>` in a child process and return its result."""
        command = [self.pythonExecutable(), "-m", "Wonder3DMedLib", *args]
        logging.info("Wonder3DMed: running %s", " ".join(command))
        return subprocess.run(
            command, cwd=self.libraryParentDir(), capture_output=True, text=True, timeout=timeout, check=False
        )

    def checkSetup(self, weightsDir: str | None = None) -> SetupReport:
        """Run `wonder3dmed doctor` in a child process.

        :param weightsDir: a Wonder3D checkpoint folder to check first (optional).
        :return: the parsed report; raises RuntimeError if the child could not run at all.
        """
        extra = ["--weights", weightsDir] if weightsDir else []
        jsonResult = self.runLibraryCommand(["doctor", "--json", *extra])
        if not jsonResult.stdout.strip():
            raise RuntimeError(f"wonder3dmed doctor failed (exit code {jsonResult.returncode}):\n{jsonResult.stderr}")
        textResult = self.runLibraryCommand(["doctor", *extra])
        return SetupReport(json.loads(jsonResult.stdout), textResult.stdout)


#
# Wonder3DMedTest
#


class Wonder3DMedTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (ctest py_Wonder3DMed). Fast: no torch, no weights, no network."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_LibraryImports()
        self.setUp()
        self.test_CheckSetup()

    def test_LibraryImports(self):
        """The library imports in Slicer's Python and its frame conventions invert exactly."""
        self.delayDisplay("Checking the library import")
        import numpy as np

        from Wonder3DMedLib.model_frame import model_to_pixel_matrix, pixel_to_model_matrix

        roundTrip = pixel_to_model_matrix(256) @ model_to_pixel_matrix(256)
        np.testing.assert_allclose(roundTrip, np.eye(4), atol=1e-12)
        self.delayDisplay("Test passed")

    def test_CheckSetup(self):
        """The logic runs the library in a child process and parses its report."""
        self.delayDisplay("Running wonder3dmed doctor in a child process")
        report = Wonder3DMedLogic().checkSetup()
        self.assertIn("packages", report.data)
        self.assertIn("Wonder3D weights", report.text)
        self.delayDisplay("Test passed")
