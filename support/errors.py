"""The error a user sees: a bad input or option, with the message ready to print."""

from __future__ import annotations


class UserError(Exception):
    """A bad input or option, with a message ready for the user (place included)."""
