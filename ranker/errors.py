"""Errors the ranker raises; each message says what is wrong and what to do."""


class RankerError(ValueError):
    """Bad input to the ranker: a wrong shape, a code out of range, an unknown task..."""


class StoreError(RankerError):
    """A model store file is missing, damaged (checksum mismatch) or from another model."""
