"""Errors the quantizer raises for bad input; each message says what is wrong and what to do."""


class QuantizerError(ValueError):
    """Bad input to the quantizer (wrong shape, non-finite rows, too few vectors...)."""


class CodebookError(QuantizerError):
    """A codebook folder is missing, damaged, or does not fit the data."""
