"""Errors raised for attention inputs the kernels cannot take."""


class AttentionInputError(ValueError):
    """Shapes, dtypes, devices or masks that do not describe a valid attention call."""


class UnsupportedHeadDimError(AttentionInputError):
    """Head dimension above the largest one the Triton kernels are built for (128)."""


class TritonModeError(RuntimeError):
    """TRITON_INTERPRET changed after triton was imported: kernels would run in the wrong mode."""
