"""One parsed Exotel API request: its route, body and parameters."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from starlette.datastructures import UploadFile
from starlette.requests import Request

from services.sandbox.reqlog import RequestRecord
from services.sandbox.state import Api

_EVENTS_KEY = re.compile(r"^statuscallbackevents(\[\d*\])?$", re.IGNORECASE)


@dataclass
class ApiRequest:
    method: str
    path: str
    api: Api
    as_json: bool
    params: dict[str, str]
    query: dict[str, str]
    record: RequestRecord
    form_items: list[tuple[str, str]] = field(default_factory=list)
    body_json: Any = None
    body_error: str | None = None

    @property
    def account_sid(self) -> str:
        return self.params.get("account", "")

    def get(self, name: str) -> str | None:
        """A form or top-level JSON parameter, matched case-insensitively."""
        wanted = name.lower()
        for key, value in self.form_items:
            if key.lower() == wanted:
                return value
        if isinstance(self.body_json, dict):
            for key, value in self.body_json.items():
                if str(key).lower() == wanted and value is not None:
                    return value if isinstance(value, str) else json.dumps(value)
        return None

    def events(self) -> list[str]:
        """``StatusCallbackEvents[0..n]`` (or repeated / comma-separated / a JSON list)."""
        found: list[str] = []
        sources: list[tuple[str, Any]] = list(self.form_items)
        if isinstance(self.body_json, dict):
            sources.extend(self.body_json.items())
        for key, value in sources:
            if not _EVENTS_KEY.match(str(key)):
                continue
            values = value if isinstance(value, list) else str(value).split(",")
            found.extend(str(item).strip() for item in values if str(item).strip())
        return list(dict.fromkeys(found))


async def read_body(request: Request) -> tuple[list[tuple[str, str]], Any, str | None]:
    """(form items, JSON body, parse error) of a request, whatever its content type."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        try:
            form = await request.form()
        except Exception as exc:  # noqa: BLE001 - any malformed body is the client's fault
            return [], None, f"unreadable form body: {type(exc).__name__}"
        items: list[tuple[str, str]] = []
        for key, value in form.multi_items():
            items.append((key, (value.filename or "") if isinstance(value, UploadFile) else value))
        return items, None, None
    raw = await request.body()
    if not raw.strip():
        return [], None, None
    if "json" in content_type or raw.lstrip()[:1] in (b"{", b"["):
        try:
            return [], json.loads(raw), None
        except ValueError:
            return [], None, "body is not valid JSON"
    try:
        return parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True), None, None
    except (ValueError, UnicodeDecodeError):
        return [], None, "unreadable body"


def form_dict(items: list[tuple[str, str]]) -> dict[str, Any]:
    """Form items as a dict; a repeated key keeps every value in a list."""
    found: dict[str, Any] = {}
    for key, value in items:
        if key in found:
            previous = found[key]
            found[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            found[key] = value
    return found


def command_id_of(items: list[tuple[str, str]], body: Any) -> str | None:
    """``command_id`` from the query of the status-callback URL(s) in the request."""
    urls = [value for key, value in items if key.lower() == "statuscallback"]
    if isinstance(body, dict):
        for key, value in body.items():
            if str(key).lower() == "statuscallback" and isinstance(value, str):
                urls.append(value)
            if str(key).lower() == "status_callback" and isinstance(value, list):
                urls.extend(str(item.get("url")) for item in value if isinstance(item, dict))
    for url in urls:
        values = parse_qs(urlsplit(url).query).get("command_id")
        if values:
            return values[0]
    return None
