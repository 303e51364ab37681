"""Errors of the model domain."""


class ModelError(ValueError):
    """
    A value or an operation the model refuses.

    Its C{str()} is one short human sentence, shown as is by the shell
    (after C{% }) and by the HTTP API, e.g. C{SMPP password is at most 8
    characters}.
    """
