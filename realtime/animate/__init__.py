"""The procedural animator: the teacher that annotates synthetic speech with motion (and `render --teacher`)."""
from realtime.animate.animator import AnimationError, Animator, AnimatorConfig, animate_segments
from realtime.animate.idle import IdleConfig, idle_track
from realtime.animate.programs import PROGRAMS, Program, UnknownProgramError, program_track
from realtime.animate.visemes import bilabial_closure, viseme_labels, viseme_of, viseme_track

__all__ = ["AnimationError", "Animator", "AnimatorConfig", "animate_segments", "IdleConfig", "idle_track",
           "PROGRAMS", "Program", "UnknownProgramError", "program_track", "bilabial_closure", "viseme_labels",
           "viseme_of", "viseme_track"]
