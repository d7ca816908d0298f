"""What people send, read safely: whole-number ids, and short quotes of bad input in error messages.

Anything a browser or an API client sends can be anything (a 10 MB string where a choice was
expected, 86.9 where a trial id was); every error message that repeats it goes through `quoted`,
and every id through `parse_id`.
"""

from __future__ import annotations

import re

from . import SurveyError

__all__ = ["EXCERPT_CHARS", "parse_id", "quoted"]

# Enough to recognise what one typed; an error message never grows with the input.
EXCERPT_CHARS = 40
# Ids are database integers; 18 digits keep even a 64-bit id and refuse a megabyte of digits.
_ID_TEXT = re.compile(r"\s*\+?(\d{1,18})\s*")


def quoted(value: object, *, limit: int = EXCERPT_CHARS) -> str:
    """`value` in single quotes for an error message, cut to `limit` characters with its length said.

    quoted("left") -> "'left'"; quoted("x" * 10**7) -> "'xxxx…' (10,000,000 characters)".
    Line breaks and other control characters become spaces, so a message stays one line.
    """
    text = value if isinstance(value, str) else str(value)
    head = "".join(c if c.isprintable() else " " for c in text[:limit])
    if len(text) <= limit:
        return f"'{head}'"
    return f"'{head[: limit - 1]}…' ({len(text):,} characters)"


def parse_id(value: object, *, what: str = "trial") -> int:
    """A whole-number id from an int, an integral float (86.0) or a string of digits ("86").

    Raises SurveyError for anything else (86.9, "86.0", "seven", True, None), quoting a short excerpt.
    """
    if isinstance(value, bool):  # True is an int to Python, not an id to anyone
        pass
    elif isinstance(value, int) and value >= 0:
        return value
    elif isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    elif isinstance(value, str) and (match := _ID_TEXT.fullmatch(value)):
        return int(match.group(1))
    raise SurveyError(f"A {what} id is a whole number, not {quoted(value)}.")
