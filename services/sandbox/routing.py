"""Exotel's paths (case-insensitive Accounts/Calls, optional ``.json``) to handlers."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.responses import Response

from services.sandbox import handlers_ccm, handlers_lwb, handlers_numbers, handlers_v1
from services.sandbox.apirequest import ApiRequest
from services.sandbox.context import Sandbox
from services.sandbox.ratelimit import Family
from services.sandbox.state import Api

Handler = Callable[[Sandbox, ApiRequest], Awaitable[Response]]

_V1 = r"^/v1/accounts/(?P<account>[^/]+)/calls"
_CALL = r"/(?P<call>[^/.]+)"
_JSON = r"(?P<json>\.json)?$"


@dataclass(frozen=True)
class Endpoint:
    name: str
    api: Api
    method: str
    pattern: re.Pattern[str]
    family: Family
    handler: Handler
    ccm_key: str = "call_details"


def _ep(  # noqa: PLR0917 - a table row
    name: str, api: Api, method: str, pattern: str, family: Family, handler: Handler, key: str = ""
) -> Endpoint:
    compiled = re.compile(pattern, re.IGNORECASE)
    return Endpoint(name, api, method, compiled, family, handler, key or "call_details")


ENDPOINTS: tuple[Endpoint, ...] = (
    _ep("v1.connect", "v1", "POST", _V1 + "/connect" + _JSON, "voice", handlers_v1.connect),
    _ep("v1.bulk", "v1", "GET", _V1 + _JSON, "get", handlers_v1.bulk_calls),
    _ep("v1.details", "v1", "GET", _V1 + _CALL + _JSON, "get", handlers_v1.call_details),
    _ep(
        "v1.activelegs",
        "v1",
        "GET",
        _V1 + _CALL + "/activelegs" + _JSON,
        "get",
        handlers_lwb.active_legs,
    ),
    _ep(
        "v1.legs.create",
        "v1",
        "POST",
        _V1 + _CALL + "/legs" + _JSON,
        "voice",
        handlers_lwb.create_monitor_leg,
    ),
    _ep(
        "v1.legs.completed",
        "v1",
        "GET",
        _V1 + _CALL + "/legs" + _JSON,
        "legs",
        handlers_lwb.completed_call_legs,
    ),
    _ep(
        "v1.legs.update",
        "v1",
        "PUT",
        _V1 + _CALL + "/legs/(?P<leg>[^/.]+)" + _JSON,
        "voice",
        handlers_lwb.update_leg,
    ),
    _ep(
        "v1.numbers",
        "v1",
        "GET",
        r"^/v1/accounts/(?P<account>[^/]+)/numbers/(?P<number>[^/]+?)" + _JSON,
        "get",
        handlers_numbers.number_metadata,
    ),
    _ep(
        "v2.create",
        "v2",
        "POST",
        r"^/v2/accounts/(?P<account>[^/]+)/calls$",
        "voice",
        handlers_ccm.v2_create,
        "data",
    ),
    _ep(
        "v2.get",
        "v2",
        "GET",
        r"^/v2/accounts/(?P<account>[^/]+)/calls/(?P<call>[^/]+)$",
        "get",
        handlers_ccm.v2_get,
        "data",
    ),
    _ep(
        "v3.create",
        "v3",
        "POST",
        r"^/v3/accounts/(?P<account>[^/]+)/calls$",
        "voice",
        handlers_ccm.v3_create,
    ),
    _ep(
        "v3.get",
        "v3",
        "GET",
        r"^/v3/accounts/(?P<account>[^/]+)/calls/(?P<call>[^/]+)$",
        "get",
        handlers_ccm.v3_get,
    ),
    _ep(
        "v3.legs",
        "v3",
        "GET",
        r"^/v3/accounts/(?P<account>[^/]+)/calls/(?P<call>[^/]+)/legs$",
        "get",
        handlers_ccm.v3_legs,
        "leg_details",
    ),
)


@dataclass(frozen=True)
class Resolution:
    endpoint: Endpoint | None
    params: dict[str, str]
    allowed: tuple[str, ...]  # methods the path supports (for 405)

    @property
    def as_json(self) -> bool:
        return bool(self.params.get("json"))


def api_of(path: str) -> Api:
    prefix = path.lower()[:4]
    if prefix == "/v2/":
        return "v2"
    if prefix == "/v3/":
        return "v3"
    return "v1"


def resolve(method: str, path: str) -> Resolution:
    allowed: list[str] = []
    params: dict[str, str] = {}
    for endpoint in ENDPOINTS:
        match = endpoint.pattern.match(path)
        if match is None:
            continue
        found = {key: value for key, value in match.groupdict().items() if value is not None}
        if endpoint.method == method.upper():
            return Resolution(endpoint, found, (endpoint.method,))
        allowed.append(endpoint.method)
        params = params or found
    return Resolution(None, params, tuple(dict.fromkeys(allowed)))
