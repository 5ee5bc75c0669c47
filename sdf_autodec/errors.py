"""One-line error messages: the project reports bad input in a single line naming the file."""

from __future__ import annotations


def first_line(error: BaseException, fallback: str | None = None) -> str:
    """The first line of ``str(error)``; when it is empty, ``fallback`` (default: the exception's type name)."""
    text = str(error).strip()
    if text:
        return text.splitlines()[0]
    return type(error).__name__ if fallback is None else fallback
