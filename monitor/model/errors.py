"""Errors the storage and rules layers raise about a request's meaning.

They say what is wrong (a stable ``code`` for machines, a ``message`` for people)
and nothing about HTTP: the web layer (``errors``) maps each class to a status, the
CLI prints the message. Plain data that imports nothing of ours, so storage never
depends on the web layer.
"""

from __future__ import annotations


class DomainError(Exception):
    """A refusal with a stable code and a message fit to show the caller."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidInput(DomainError):
    """The caller's input cannot be used as given (a filter, a cursor, a field)."""


class NotFound(DomainError):
    """The thing asked for does not exist (or no longer does)."""


class Conflict(DomainError):
    """The request is valid but the thing's current state refuses it (an endpoint
    without a forward target asked to replay to it, a replay already running)."""


class SettingsError(ValueError):
    """An endpoint settings document is invalid; the message names the setting."""
