"""Training corpus: speech audio paired with teacher motion, visemes and instruction texts.

`format` stores and reads it, `sentences` supplies what is said, `augment` roughens the audio,
`build` synthesises the whole thing (`avatar corpus`), `human_speech` lists real recordings for evaluation.
"""
from realtime.training.corpus.format import (
    Corpus,
    CorpusError,
    CorpusItem,
    CorpusWriter,
)

__all__ = ["Corpus", "CorpusError", "CorpusItem", "CorpusWriter"]
