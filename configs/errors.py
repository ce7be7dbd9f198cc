"""The one error type a bad configuration raises."""


class SettingsError(ValueError):
    """A settings or experiments file (or an environment override) holds a bad value.

    The message names the key and the problem in one line, for example
    ``quantizer.levels: expected `int >= 1`, got `0` (from LUCIDREC_QUANTIZER__LEVELS)``.
    """
