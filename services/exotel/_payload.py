"""Decoding Exotel response bodies (JSON or XML) into plain Python objects.

Exotel's v1 API answers XML by default and JSON for ``.json`` URLs; error bodies may come
in either form whatever was asked for, and tag/key case is not reliable (the LWB
documentation shows ``<restexception><code>``). Everything here is therefore lenient about
shape and case, and strict about safety: XML with a DOCTYPE or entity declaration is
refused before it reaches the parser (no entity expansion, no external entities).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any
from xml.etree import ElementTree as ET

__all__ = [
    "PayloadError",
    "ci_get",
    "first_of",
    "items_of",
    "load_payload",
    "lower_keys",
    "xml_to_obj",
]

_UNSAFE_XML = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
MAX_BODY_BYTES = 8 * 1024 * 1024
_NBSP = "\u00a0".encode()


class PayloadError(ValueError):
    """A body that is neither valid JSON nor safe, well-formed XML."""


def load_payload(body: bytes) -> Any:
    """Decode ``body`` as JSON, or as XML when it starts with ``<``.

    XML is converted with :func:`xml_to_obj` (the root element is dropped, so
    ``<TwilioResponse><Call>..`` becomes ``{"call": {...}}``).
    """
    if len(body) > MAX_BODY_BYTES:
        raise PayloadError(f"response body too large ({len(body)} bytes)")
    text = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        raise PayloadError("empty response body")
    if text.startswith(b"<"):
        return xml_to_obj(text)
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        if _NBSP in text:
            # Copy-pasted JSON (Exotel's own samples) may use U+00A0 as indentation.
            try:
                return json.loads(text.replace(_NBSP, b" "))
            except (json.JSONDecodeError, UnicodeDecodeError):
                pass
        raise PayloadError(f"response body is not valid JSON: {e}") from e


def xml_to_obj(body: bytes) -> Any:
    """Parse XML safely into dicts/lists/strings with lower-cased keys.

    A leaf element becomes its stripped text (``None`` when empty); an element with
    children becomes a dict; a tag repeated among siblings becomes a list.
    """
    if _UNSAFE_XML.search(body):
        raise PayloadError("XML with a DOCTYPE or ENTITY declaration is refused")
    try:
        root = ET.fromstring(body)  # noqa: S314 - DOCTYPE/ENTITY refused above
    except ET.ParseError as e:
        raise PayloadError(f"response body is not well-formed XML: {e}") from e
    return _element_to_obj(root)


def _element_to_obj(element: ET.Element) -> Any:
    children = list(element)
    if not children:
        text = (element.text or "").strip()
        return text or None
    counts = Counter(_local_name(child.tag).lower() for child in children)
    out: dict[str, Any] = {}
    for child in children:
        key = _local_name(child.tag).lower()
        value = _element_to_obj(child)
        if counts[key] > 1:
            out.setdefault(key, []).append(value)
        else:
            out[key] = value
    return out


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def lower_keys(obj: Any) -> Any:
    """Recursively lower-case every mapping key (values are left untouched)."""
    if isinstance(obj, Mapping):
        return {str(k).lower(): lower_keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [lower_keys(v) for v in obj]
    return obj


def ci_get(obj: Any, *names: str) -> Any:
    """The value of the first of ``names`` present in mapping ``obj`` (case-insensitive)."""
    if not isinstance(obj, Mapping):
        return None
    lowered = {str(k).lower(): v for k, v in obj.items()}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def first_of(obj: Any, *names: str) -> Any:
    """Like :func:`ci_get` but skips keys whose value is ``None``."""
    if not isinstance(obj, Mapping):
        return None
    lowered = {str(k).lower(): v for k, v in obj.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value is not None:
            return value
    return None


def items_of(obj: Any, *names: str) -> list[Any]:
    """Collect list items found under any of ``names`` (nested containers unwrapped).

    Handles ``{"legs": [...]}``, ``{"legs": {...}}`` (one item), XML-ish
    ``{"legs": {"leg": [...]}}`` and ``[{"Leg": {...}}, ...]`` wrappers.
    """
    value = ci_get(obj, *names)
    return list(_unwrap(value, names))


def _unwrap(value: Any, names: Iterable[str]) -> Iterable[Any]:
    names = tuple(names)
    if value is None:
        return
    if isinstance(value, list):
        for item in value:
            yield from _unwrap_item(item, names)
        return
    if isinstance(value, Mapping):
        inner = ci_get(value, *names)
        if inner is not None and len(value) == 1:
            yield from _unwrap(inner, names)
            return
        yield value


def _unwrap_item(item: Any, names: tuple[str, ...]) -> Iterable[Any]:
    if isinstance(item, Mapping) and len(item) == 1:
        inner = ci_get(item, *names)
        if isinstance(inner, Mapping):
            yield inner
            return
    if item is not None:
        yield item
