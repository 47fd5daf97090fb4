"""Request bodies are checked once, before any route reads them, for text that is not text.

A JSON body may carry ``"\ud800"``: valid JSON, but a lone surrogate is no character, and past this point
it breaks the tokenizer, SQLite and the UTF-8 encoding of the answer. Every route that takes JSON is
covered here, so a new route needs no per-field code: the answer is a 422 naming the field
(``queries[0]``, ``filters.lang``) with the reason from :func:`koembed.text.text_problem`. A body that is
not valid UTF-8 (or whichever of UTF-8/16/32 its first bytes announce, as JSON allows) is a 400.
"""

from __future__ import annotations

import json
import re

from koembed.text import find_bad_text

# A \uD800-\uDFFF escape: only bodies holding one can decode to a surrogate (valid pairs, e.g. an emoji
# escaped by Python's json.dumps, also match and are parsed to tell them apart).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def body_problem(body: bytes) -> tuple[int, str, str, str] | None:
    """``(status, param, message, code)`` when a JSON body is not text, else None (malformed JSON is not
    judged here: the route's parser names where it breaks)."""
    if not body:
        return None
    encoding = json.detect_encoding(body)
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        name = "UTF-8" if encoding.startswith("utf-8") else encoding.upper()
        return (400, "body", f"body: not valid {name} (byte 0x{body[exc.start]:02x} at offset {exc.start}); "
                "send the JSON as UTF-8", "invalid_encoding")
    if _SURROGATE_ESCAPE.search(text) is None:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    found = find_bad_text(value)
    if found is None:
        return None
    param, problem = found
    return 422, param, f"{param}: {problem}", "invalid_text"
