"""sealstream's own copies of the reference's stream errors (used without ``peaq_os_sdk``).

Same names, constructor arguments and attributes as ``peaq_os_sdk.stream.errors``:
``StreamValidationError(message, field, constraint)``, ``StreamSigningError(message, *,
cause=None)``, all with ``.code`` (empty for the errors the stream functions raise).
"""

from __future__ import annotations

from typing import Optional


class StreamError(RuntimeError):
    """Base class of stream failures."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class StreamValidationError(StreamError):
    """Caller input that breaks a rule: ``field`` and ``constraint`` name it."""

    def __init__(self, message: str, field: str, constraint: str) -> None:
        super().__init__(message)
        self.field = field
        self.constraint = constraint


class StreamSigningError(StreamError):
    """A key that cannot be used, or a cryptographic operation that failed."""

    def __init__(self, message: str, *, cause: Optional[BaseException] = None) -> None:
        super().__init__(message)
        if cause is not None:
            self.__cause__ = cause
