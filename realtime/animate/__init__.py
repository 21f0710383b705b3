"""The procedural animator: the teacher that annotates synthetic speech with motion (and `render --teacher`), and
the gestures the generator's sampler performs with its programs."""
from realtime.animate.animator import AnimationError, Animator, AnimatorConfig, animate_segments
from realtime.animate.idle import IdleConfig, idle_track
from realtime.animate.programs import (
    PROGRAMS,
    GestureStream,
    HoldStream,
    Program,
    UnknownProgramError,
    perform_program,
    program_track,
)
from realtime.animate.visemes import bilabial_closure, viseme_labels, viseme_of, viseme_track

__all__ = ["AnimationError", "Animator", "AnimatorConfig", "animate_segments", "IdleConfig", "idle_track",
           "GestureStream", "HoldStream", "perform_program", "PROGRAMS", "Program", "UnknownProgramError",
           "program_track", "bilabial_closure", "viseme_labels", "viseme_of", "viseme_track"]
