"""Exotel's answer shapes: v1 XML / JSON, v1 RestException, v2/v3 envelopes."""

from __future__ import annotations

import uuid
from typing import Any, Literal
from xml.sax.saxutils import escape

from starlette.responses import JSONResponse, Response

from services.exotel.fields import V1, Ccm

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
    root = V1.TWILIO_RESPONSE
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>{inner}</{root}>\n'


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
            V1.CODE: error.code,
            V1.MESSAGE: error.message,
            V1.DESCRIPTION: error.description,
        }
    else:
        body = {V1.STATUS: error.status, V1.CODE: error.code, V1.MESSAGE: error.message}
        if as_json:
            body[V1.DESCRIPTION] = error.description
    if as_json:
        response: Response = JSONResponse({V1.REST_EXCEPTION: body}, status_code=error.status)
    else:
        response = xml_response([(V1.REST_EXCEPTION, body)], error.status)
    response.headers.update(error.headers)
    return response


# -- v2 / v3 -------------------------------------------------------------------------
def ccm_envelope(
    method: str, status: int, key: str, data: Any, error: ApiError | None = None
) -> dict[str, Any]:
    return {
        Ccm.REQUEST_ID: uuid.uuid4().hex,
        Ccm.METHOD: method,
        Ccm.HTTP_CODE: status,
        Ccm.METADATA: None,
        Ccm.RESPONSE: {
            Ccm.CODE: status,
            Ccm.ERROR_DATA: None
            if error is None
            else {
                Ccm.CODE: error.code,
                Ccm.DESCRIPTION: error.description or error.message,
                Ccm.MESSAGE: error.message,
            },
            Ccm.STATUS: "success" if error is None else "failure",
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
