"""Instructions: MiniLM embeddings (cached), the instruction catalogue, matching and AU description."""
from realtime.instruct.catalogue import Instruction, build_catalogue
from realtime.instruct.describe import DescribeConfig, Description, DescriptionError, describe
from realtime.instruct.encoder import (MAX_CHARS, EncoderConfig, InstructionEmbedding, InstructionEncoder,
                                       InstructionError)
from realtime.instruct.matcher import InstructionNotUnderstood, Match, MatcherConfig, ProgramMatcher

__all__ = ["Instruction", "build_catalogue", "DescribeConfig", "Description", "DescriptionError", "describe",
           "MAX_CHARS", "EncoderConfig", "InstructionEmbedding", "InstructionEncoder", "InstructionError",
           "InstructionNotUnderstood", "Match", "MatcherConfig", "ProgramMatcher"]
