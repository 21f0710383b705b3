"""Viseme classes: the teacher's mouth shapes, the corpus labels and the generator's auxiliary head."""
from __future__ import annotations

from enum import IntEnum


class Viseme(IntEnum):
    """The ids are stored in corpora and checkpoints: append, never renumber."""

    SIL = 0  # silence / pause: lips rest closed
    BILABIAL = 1  # p b m: full closure
    LABIODENTAL = 2  # f v: lower lip to the upper teeth
    DENTAL = 3  # T D (th)
    ALVEOLAR = 4  # t d n s z l
    POSTALVEOLAR = 5  # S Z tS dZ: slightly rounded, protruded
    VELAR = 6  # k g N h
    R = 7  # r and r-coloured vowels
    W = 8  # w: tight rounding
    OPEN = 9  # a A aI aU: jaw drops
    MID = 10  # e E @ V 3 eI: half open
    SPREAD = 11  # i I j: spread lips
    ROUNDED = 12  # u U oU O 0 OI: rounded vowels


VISEME_UNKNOWN = -1  # a frame whose viseme is not known (annotated real footage)
