"""Errors the encoder raises; each message says what is wrong and what to do."""


class EncoderError(ValueError):
    """Bad input or configuration for the encoder (a missing checkpoint, a bad JSONL line...)."""


class SliceInputError(EncoderError):
    """One slice cannot be encoded through the caller's fault (e.g. a frame path that does not
    exist). :meth:`SliceEncoder.encode_each` reports it per slice instead of raising."""


class CheckpointError(EncoderError):
    """A model folder or file is missing, incomplete or of an unsupported kind."""
