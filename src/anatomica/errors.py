"""The one exception type users see: the CLI prints its message as a single line and exits 2."""


class AnatomicaError(ValueError):
    """Bad input or configuration, with a message that says what to fix."""
