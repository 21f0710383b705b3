"""The shared vocabulary: time base, motion axes and their groups, visemes, program names and levels, limits.

Every stage (audio, instructions, motion, renderer, server, training, benchmarks, clients) imports these names
from here and declares none of them itself. Nothing here imports another part of the project.
"""
from realtime.vocab.axes import (
                                 AXES,
                                 DIM,
                                 EYELID_AXES,
                                 HI,
                                 INDEX,
                                 LIP_AXES,
                                 LO,
                                 NAMES,
                                 OPENING_AXES,
                                 SCALE,
                                 SPEECH_AXES,
                                 Axis,
                                 MotionSequence,
                                 axes_table_markdown,
                                 clip,
                                 neutral,
                                 vector,
)
from realtime.vocab.limits import INTENSITY_RANGE, MAX_INSTRUCTION_CHARS
from realtime.vocab.programs import (
                                 EMOTIONS,
                                 FACE_MOTIONS,
                                 GESTURES,
                                 HEAD_MOTIONS,
                                 LEGACY_PROGRAM_NAMES,
                                 LEVELS,
                                 MODERATE,
                                 MOTIONS,
                                 PROGRAM_NAMES,
                                 RELAXES_SMILE,
                                 SLIGHT,
                                 SMILING,
                                 STRONG,
                                 relax_scale,
                                 smile_relax,
)
from realtime.vocab.timebase import AUDIO_PTIME_S, FPS, MODEL_RATE, SAMPLES_PER_FRAME, VIDEO_CLOCK, WEBRTC_AUDIO_RATE
from realtime.vocab.visemes import VISEME_UNKNOWN, Viseme

__all__ = ["AXES", "DIM", "EYELID_AXES", "HI", "INDEX", "LIP_AXES", "LO", "NAMES", "OPENING_AXES", "SCALE",
           "SPEECH_AXES", "Axis",
           "MotionSequence", "axes_table_markdown", "clip", "neutral", "vector", "INTENSITY_RANGE",
           "MAX_INSTRUCTION_CHARS", "EMOTIONS", "FACE_MOTIONS", "GESTURES", "HEAD_MOTIONS", "LEGACY_PROGRAM_NAMES",
           "LEVELS", "MODERATE", "MOTIONS",
           "PROGRAM_NAMES", "RELAXES_SMILE", "SLIGHT", "SMILING", "STRONG", "relax_scale", "smile_relax",
           "AUDIO_PTIME_S", "FPS", "MODEL_RATE", "SAMPLES_PER_FRAME",
           "VIDEO_CLOCK", "WEBRTC_AUDIO_RATE", "VISEME_UNKNOWN", "Viseme"]
