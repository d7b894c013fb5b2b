"""A fast path for the multipart/form-data bodies Exotel sends: plain text fields only.

python-multipart (through starlette) parses a body byte by byte and each part's headers
with a general options parser: about a quarter of the ingress's CPU per callback in the
profile (bench/RESULTS.md). A status callback is a handful of text fields, each part with
one ``Content-Disposition: form-data; name="…"`` header. :func:`simple_form` reads exactly
that shape with a few splits and one regular expression, and answers ``None`` for anything
else (a charset other than UTF-8, a preamble, another part header, a filename, an escaped
or RFC 2231 name, a value that is not UTF-8, too many fields, a part over the size limit):
the full parser then decides, with its own answers and errors. Where it answers, it
answers what the full parser would (tests/ingress/test_multipart.py compares them).
"""

from __future__ import annotations

import re

_BOUNDARY = re.compile(
    r';\s*boundary=(?:"([^"\\\r\n]{1,70})"|([^\s;",\\]{1,70}))\s*(?:;|$)', re.IGNORECASE
)
_CHARSET = re.compile(r';\s*charset=("?)([^\s;"]*)\1', re.IGNORECASE)
_DISPOSITION = re.compile(
    rb'content-disposition:[ \t]*form-data;[ \t]*name="([^"\\\r\n]*)"[ \t]*', re.IGNORECASE
)


def boundary_of(content_type: str) -> bytes | None:
    match = _BOUNDARY.search(content_type)
    if match is None:
        return None
    return (match.group(1) or match.group(2)).encode("latin-1")


def simple_form(
    body: bytes, content_type: str, *, max_fields: int, max_part_size: int
) -> list[tuple[str, str]] | None:
    """The fields of a multipart body of plain text fields, or ``None`` (not that shape)."""
    boundary = boundary_of(content_type)
    if boundary is None:
        return None
    charset = _CHARSET.search(content_type)
    if charset is not None and charset.group(2).lower() not in ("utf-8", "utf8"):
        return None  # the full parser decodes with the declared charset
    delimiter = b"--" + boundary
    if not body.startswith(delimiter + b"\r\n"):
        return None
    closing = body.rfind(b"\r\n" + delimiter + b"--")
    if closing < 0 or body[closing + len(delimiter) + 4 :] not in (b"", b"\r\n"):
        return None
    inner = body[len(delimiter) + 2 : closing]
    parts = inner.split(b"\r\n" + delimiter + b"\r\n")
    if len(parts) > max_fields:
        return None
    pairs: list[tuple[str, str]] = []
    for part in parts:
        head, separator, value = part.partition(b"\r\n\r\n")
        if not separator or len(value) > max_part_size:
            return None
        match = _DISPOSITION.fullmatch(head)
        if match is None:
            return None
        try:
            pairs.append((match.group(1).decode("utf-8"), value.decode("utf-8")))
        except UnicodeDecodeError:
            return None
    return pairs
