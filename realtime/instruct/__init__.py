"""Instructions: MiniLM embeddings (cached), the instruction wordings, and matching free text to programs."""
from realtime.instruct.catalogue import Instruction, reference_texts
from realtime.instruct.encoder import EncoderConfig, InstructionEmbedding, InstructionEncoder, InstructionError
from realtime.instruct.matcher import InstructionNotUnderstood, Match, MatcherConfig, ProgramMatcher
from realtime.instruct.wording import WordedEncoder, plain_wording

__all__ = ["Instruction", "reference_texts", "EncoderConfig", "InstructionEmbedding", "InstructionEncoder",
           "InstructionError", "InstructionNotUnderstood", "Match", "MatcherConfig", "ProgramMatcher",
           "WordedEncoder", "plain_wording"]
