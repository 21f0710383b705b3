"""The procedural animator: the teacher that annotates synthetic speech with motion."""
from realtime.animate.animator import Animator, AnimatorConfig
from realtime.animate.programs import EMOTIONS, LEVELS, MOTIONS, PROGRAMS, Program, UnknownProgramError, program_track
from realtime.animate.visemes import Viseme, viseme_labels, viseme_of, viseme_track

__all__ = ["Animator", "AnimatorConfig", "EMOTIONS", "LEVELS", "MOTIONS", "PROGRAMS", "Program",
           "UnknownProgramError", "program_track", "Viseme", "viseme_labels", "viseme_of", "viseme_track"]


def animate_segments(speech, n_frames, segments, seed=0):
    """Module-level convenience for `Animator().animate_segments`."""
    return Animator().animate_segments(speech, n_frames, segments, seed)
