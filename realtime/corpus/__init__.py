"""Training corpus: speech audio paired with teacher motion, visemes and instruction texts.

`format` stores and reads it, `sentences` supplies what is said, `augment` roughens the audio,
`build` synthesises the whole thing (`avatar corpus`), `human_speech` lists real recordings for evaluation.
"""
from realtime.corpus.format import (
    SAMPLES_PER_FRAME,
    Corpus,
    CorpusError,
    CorpusItem,
    CorpusWriter,
)

__all__ = ["SAMPLES_PER_FRAME", "Corpus", "CorpusError", "CorpusItem", "CorpusWriter"]
