"""Portrait enrolment, landmark rig and renderer: motion vectors -> frames of one face."""
from .enrol import EnrolmentError, FaceTooSmallError, ImageReadError, NoFaceError, Portrait, PortraitCache, enrol
from .landmarks import DlibLandmarkDetector, Face, LandmarkDetector
from .renderer import MotionShapeError, RenderConfig, Renderer, set_cpu_threads
from .rig import Rig
from .sheet import contact_sheet

__all__ = ["DlibLandmarkDetector", "EnrolmentError", "Face", "FaceTooSmallError", "ImageReadError",
           "LandmarkDetector", "MotionShapeError", "NoFaceError", "Portrait", "PortraitCache", "RenderConfig",
           "Renderer", "Rig", "contact_sheet", "enrol", "set_cpu_threads"]
