"""Exotel's documented callback samples (tests/data/callbacks/), loaded for the tests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

DATA = Path(__file__).resolve().parent.parent / "data" / "callbacks"

# "Name: value" fields as the v1 doc prints its multipart sample on one line. Names are
# letters (optionally Legs[i][Field]); values may contain blanks and colons (times).
_FIELD = re.compile(r"(?:^| )([A-Za-z]+(?:\[\d+\]\[[A-Za-z]+\])?):(?= |$)")
_LWB_PAIR = re.compile(r'"([a-z]+)" "([^"]*)"')


def text(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8").strip()


def load(name: str) -> dict[str, Any]:
    value = json.loads((DATA / name).read_text(encoding="utf-8"))
    assert isinstance(value, dict)
    return value


def raw_bytes(name: str) -> bytes:
    return (DATA / name).read_bytes()


def form_pairs(name: str = "v1_terminal_multipart.txt") -> list[tuple[str, str]]:
    """The doc's one-line ``Name: value Name: value`` multipart sample as form pairs."""
    line = text(name)
    matches = list(_FIELD.finditer(line))
    pairs = []
    for here, after in zip(matches, [*matches[1:], None], strict=True):
        end = after.start() if after else len(line)
        pairs.append((here.group(1), line[here.end() : end].strip()))
    return pairs


def lwb_pairs(name: str = "lwb_monitor_terminal.txt") -> list[tuple[str, str]]:
    """The LWB doc's punctuation-less ``"key" "value"`` sample as pairs."""
    return _LWB_PAIR.findall(text(name))


def multipart_body(pairs: list[tuple[str, str]], boundary: str = "exotelboundary42") -> bytes:
    """A multipart/form-data body with ``pairs`` (text fields only, like Exotel sends)."""
    chunks = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in pairs
    ]
    return b"".join([*chunks, f"--{boundary}--\r\n".encode()])


def query_pairs(name: str) -> list[tuple[str, str]]:
    """A GET query sample (``name=value&...``, URL-encoded) as its decoded pairs."""
    return parse_qsl(text(name), keep_blank_values=True, strict_parsing=True)


def query_payload(name: str) -> dict[str, str]:
    """A GET query sample as the payload the ingress decodes from it (one value a name)."""
    return dict(query_pairs(name))
