"""Training the motion generator on a corpus (`avatar train --corpus DIR --out DIR [--config tiny|small]`).

`config` (TrainConfig, model presets), `data` (batches of audio segments and motion windows), `loss`
(diffusion + velocity + viseme losses), `loop` (optimiser, validation, checkpoints, resume, the command line).
"""
from realtime.training.generator.config import MODEL_PRESETS, TrainConfig, TrainError
from realtime.training.generator.data import TextEmbedder, WindowSampler, instruction_at, minilm_embedder
from realtime.training.generator.loop import STATE, build_model_config, main, train
from realtime.training.generator.loss import training_loss

__all__ = ["MODEL_PRESETS", "TrainConfig", "TrainError", "TextEmbedder", "WindowSampler", "instruction_at",
           "minilm_embedder", "STATE", "build_model_config", "main", "train", "training_loss"]
