"""Exotel's answer shapes: v1 XML / JSON, v1 RestException, v2/v3 envelopes."""

from __future__ import annotations

import uuid
from typing import Any, Literal
from xml.sax.saxutils import escape

from starlette.responses import JSONResponse, Response

ErrorStyle = Literal["standard", "legs"]


class ApiError(Exception):
    """An error answer. ``code`` is Exotel's code (v1 defaults to the HTTP status)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: int | str | None = None,
        description: str | None = None,
        headers: dict[str, str] | None = None,
        style: ErrorStyle = "standard",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code: int | str = status if code is None else code
        self.description = description
        self.headers = headers or {}
        self.style = style


# -- v1 -------------------------------------------------------------------------
def _xml(tag: str, value: Any) -> str:
    if value is None or value == "":
        return f"<{tag}/>"
    if isinstance(value, dict):
        inner = "".join(_xml(key, item) for key, item in value.items())
        return f"<{tag}>{inner}</{tag}>"
    if isinstance(value, list):
        inner = "".join(
            "".join(_xml(key, sub) for key, sub in item.items())
            if isinstance(item, dict)
            else _xml("Item", item)
            for item in value
        )
        return f"<{tag}>{inner}</{tag}>"
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{tag}>{escape(str(value))}</{tag}>"


def xml_document(children: list[tuple[str, Any]]) -> str:
    """``<TwilioResponse>`` holding the given elements, in order."""
    inner = "".join(_xml(tag, value) for tag, value in children)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<TwilioResponse>{inner}</TwilioResponse>\n'


def xml_response(children: list[tuple[str, Any]], status: int = 200) -> Response:
    return Response(
        xml_document(children), status_code=status, media_type="application/xml; charset=utf-8"
    )


def v1_response(
    json_body: dict[str, Any],
    *,
    as_json: bool,
    xml_children: list[tuple[str, Any]] | None = None,
    status: int = 200,
) -> Response:
    """JSON when the path ended in ``.json``, else XML (by default the JSON's items)."""
    if as_json:
        return JSONResponse(json_body, status_code=status)
    return xml_response(xml_children or list(json_body.items()), status)


def v1_error(error: ApiError, *, as_json: bool) -> Response:
    if error.style == "legs":
        body: dict[str, Any] = {
            "Code": error.code,
            "Message": error.message,
            "Description": error.description,
        }
    else:
        body = {"Status": error.status, "Code": error.code, "Message": error.message}
        if as_json:
            body["Description"] = error.description
    if as_json:
        response: Response = JSONResponse({"RestException": body}, status_code=error.status)
    else:
        response = xml_response([("RestException", body)], error.status)
    response.headers.update(error.headers)
    return response


# -- v2 / v3 -------------------------------------------------------------------------
def ccm_envelope(
    method: str, status: int, key: str, data: Any, error: ApiError | None = None
) -> dict[str, Any]:
    return {
        "request_id": uuid.uuid4().hex,
        "method": method,
        "http_code": status,
        "metadata": None,
        "response": {
            "code": status,
            "error_data": None
            if error is None
            else {
                "code": error.code,
                "description": error.description or error.message,
                "message": error.message,
            },
            "status": "success" if error is None else "failure",
            key: data,
        },
    }


def ccm_response(method: str, key: str, data: Any) -> Response:
    return JSONResponse(ccm_envelope(method, 200, key, data))


def ccm_error(method: str, key: str, error: ApiError) -> Response:
    response = JSONResponse(
        ccm_envelope(method, error.status, key, None, error), status_code=error.status
    )
    response.headers.update(error.headers)
    return response
