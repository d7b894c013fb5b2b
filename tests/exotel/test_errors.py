"""Exotel error bodies and transport failures become the right exception."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from services.exotel import (
    ExotelAuthError,
    ExotelError,
    ExotelNotFound,
    ExotelPermanentError,
    ExotelRateLimited,
    ExotelRejected,
    ExotelTimeout,
    ExotelTransientError,
    ExotelUnavailable,
)
from services.exotel.error_answers import parse_error_response
from services.exotel.errors import ExotelInvalidResponse
from services.exotel.transport_errors import from_transport_error
from tests.exotel.conftest import sample

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_the_tree_separates_transient_from_permanent_errors() -> None:
    for cls in (ExotelUnavailable, ExotelTimeout, ExotelRateLimited):
        assert issubclass(cls, ExotelTransientError)
        assert cls.retryable is True
    for permanent in (ExotelAuthError, ExotelNotFound, ExotelRejected, ExotelInvalidResponse):
        assert issubclass(permanent, ExotelPermanentError)
        assert permanent.retryable is False
    assert issubclass(ExotelTransientError, ExotelError)
    assert issubclass(ExotelPermanentError, ExotelError)


# ---------------------------------------------------------------- v1 RestException


def test_the_lwb_lowercase_xml_restexception_404_is_not_found_with_its_code_and_message() -> None:
    err = parse_error_response(404, {}, sample("restexception_404.xml"))
    assert type(err) is ExotelNotFound
    assert err.http_status == 404
    assert err.exotel_code == "404"
    assert err.message == "given callsid is not in progress"
    assert err.retryable is False
    assert err.maybe_sent is False


def test_a_restexception_with_only_a_status_keeps_the_status_as_its_code() -> None:
    err = parse_error_response(400, {}, sample("restexception_400_status.xml"))
    assert type(err) is ExotelRejected
    assert err.exotel_code == "400"
    assert err.message == "invalid parameter phonenumber is missing or invalid"


def test_twilio_cased_xml_tags_are_read_the_same_way() -> None:
    err = parse_error_response(400, {}, sample("synth_restexception_twilio_case.xml"))
    assert type(err) is ExotelRejected
    assert err.exotel_code == "400"
    assert err.message == "Invalid parameter: To is missing"


def test_the_v1_legs_api_json_restexception_keeps_code_message_and_description() -> None:
    err = parse_error_response(400, {}, sample("restexception_legs.json"))
    assert type(err) is ExotelRejected
    assert (err.http_status, err.exotel_code) == (400, "400")
    assert err.message == "Bad Request"
    assert err.description == "Please check the callSID passed"
    assert "Please check the callSID passed" in str(err)


def test_a_lowercase_json_restexception_is_understood() -> None:
    err = parse_error_response(404, {}, sample("restexception_404.json"))
    assert type(err) is ExotelNotFound
    assert err.exotel_code == "404"
    assert err.message == "not found"


def test_a_restexception_coded_rate_limit_exceeded_is_rate_limited_whatever_the_status() -> None:
    err = parse_error_response(403, {}, sample("synth_restexception_rate_limited_403.xml"))
    assert type(err) is ExotelRateLimited
    assert err.exotel_code == "RATE_LIMIT_EXCEEDED"
    assert err.http_status == 403
    assert err.retryable is True


def test_a_json_rate_limit_exceeded_with_retry_after_carries_the_delay() -> None:
    err = parse_error_response(
        429, {"Retry-After": "7"}, sample("synth_restexception_rate_limited.json")
    )
    assert isinstance(err, ExotelRateLimited)
    assert err.retry_after == 7.0
    assert err.exotel_code == "RATE_LIMIT_EXCEEDED"
    assert err.description == "Rate limit exceeded for this API"


# ---------------------------------------------------------------- v2 / v3


def test_a_v3_409_busy_device_is_rejected_with_code_10706() -> None:
    err = parse_error_response(409, {}, sample("synth_v3_error_busy.json"))
    assert type(err) is ExotelRejected
    assert err.http_status == 409
    assert err.exotel_code == "10706"
    assert err.message == "User device is currently busy"
    assert err.retryable is False


def test_a_busy_device_reported_under_404_is_still_a_rejection_not_a_not_found() -> None:
    err = parse_error_response(404, {}, sample("synth_v3_error_busy_404.json"))
    assert type(err) is ExotelRejected
    assert err.exotel_code == "10706"


def test_v3_error_code_10724_is_rate_limited() -> None:
    err = parse_error_response(429, {}, sample("synth_v3_error_rate_limited.json"))
    assert type(err) is ExotelRateLimited
    assert err.exotel_code == "10724"
    assert err.message == "Too many requests"
    assert err.description == "Too many requests (from Mavrix)"


def test_v3_10724_is_rate_limited_even_if_the_http_status_is_not_429() -> None:
    err = parse_error_response(400, {}, sample("synth_v3_error_rate_limited.json"))
    assert type(err) is ExotelRateLimited


def test_a_v2_authentication_failure_is_an_auth_error() -> None:
    err = parse_error_response(401, {}, sample("synth_v2_error_auth.json"))
    assert type(err) is ExotelAuthError
    assert err.exotel_code == "1010"


def test_a_forbidden_answer_is_an_auth_error() -> None:
    assert type(parse_error_response(403, {}, b"")) is ExotelAuthError


def test_a_v2_call_not_found_is_not_found() -> None:
    err = parse_error_response(404, {}, sample("synth_v2_error_call_not_found.json"))
    assert type(err) is ExotelNotFound
    assert err.exotel_code == "3043"


def test_a_v3_500_is_unavailable_retryable_and_maybe_sent() -> None:
    err = parse_error_response(500, {}, sample("synth_v3_error_legs_not_found_500.json"))
    assert type(err) is ExotelUnavailable
    assert err.exotel_code == "10743"
    assert err.retryable is True
    assert err.maybe_sent is True


def test_a_failure_inside_a_200_is_classified_by_the_code_in_the_body() -> None:
    err = parse_error_response(200, {}, sample("synth_v3_error_busy.json"))
    assert type(err) is ExotelRejected
    assert err.http_status == 200
    assert err.exotel_code == "10706"


# ---------------------------------------------------------------- unreadable bodies


def test_an_html_502_takes_its_message_from_the_status_line() -> None:
    err = parse_error_response(502, {}, sample("synth_html_502.html"))
    assert type(err) is ExotelUnavailable
    assert err.message == "502 Bad Gateway"
    assert err.exotel_code is None


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (503, ExotelUnavailable),
        (404, ExotelNotFound),
        (422, ExotelRejected),
        (429, ExotelRateLimited),
        (408, ExotelTimeout),
    ],
)
def test_an_empty_body_is_classified_by_status_alone(status: int, cls: type[ExotelError]) -> None:
    err = parse_error_response(status, {}, b"")
    assert type(err) is cls
    assert err.message.split()[0] == str(status)
    assert err.http_status == status


def test_xml_with_a_doctype_is_never_parsed() -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "boom">]>'
        b"<TwilioResponse><RestException><Code>&x;</Code><Message>&x;</Message>"
        b"</RestException></TwilioResponse>"
    )
    err = parse_error_response(400, {}, body)
    assert type(err) is ExotelRejected
    assert err.exotel_code is None
    assert "boom" not in str(err)
    assert err.message == "400 Bad Request"


def test_secrets_echoed_by_exotel_are_scrubbed_from_the_message() -> None:
    body = b'{"RestException": {"Code": 401, "Message": "bad key s3cr3t-key for account"}}'
    err = parse_error_response(401, {}, body, redact=["s3cr3t-key"])
    assert "s3cr3t-key" not in str(err)
    assert "***" in err.message


def test_very_long_messages_are_truncated() -> None:
    body = b'{"RestException": {"Code": 400, "Message": "' + b"x" * 5000 + b'"}}'
    err = parse_error_response(400, {}, body)
    assert len(err.message) <= 500


# ---------------------------------------------------------------- retry_after


def test_retry_after_as_an_http_date_becomes_seconds_from_now() -> None:
    headers = {"retry-after": "Wed, 01 Jan 2025 12:00:30 GMT"}
    err = parse_error_response(429, headers, b"", now=NOW)
    assert isinstance(err, ExotelRateLimited)
    assert err.retry_after == 30.0


def test_retry_after_in_the_past_means_no_wait() -> None:
    headers = {"Retry-After": "Wed, 01 Jan 2025 11:00:00 GMT"}
    err = parse_error_response(429, headers, b"", now=NOW)
    assert isinstance(err, ExotelRateLimited)
    assert err.retry_after == 0.0


def test_x_ratelimit_reset_in_seconds_is_used_without_retry_after() -> None:
    headers = {"X-RateLimit-Reset": "12", "X-RateLimit-Remaining": "0"}
    err = parse_error_response(429, headers, b"", now=NOW)
    assert isinstance(err, ExotelRateLimited)
    assert err.retry_after == 12.0
    assert err.remaining == 0


def test_x_ratelimit_reset_as_an_epoch_timestamp_is_converted_to_a_delay() -> None:
    headers = {"X-RateLimit-Reset": str(int(NOW.timestamp()) + 45)}
    err = parse_error_response(429, headers, b"", now=NOW)
    assert isinstance(err, ExotelRateLimited)
    assert err.retry_after == 45.0


def test_retry_after_wins_over_rate_limit_reset() -> None:
    headers = httpx.Headers({"Retry-After": "3", "X-RateLimit-Reset": "60"})
    err = parse_error_response(429, headers, b"", now=NOW)
    assert isinstance(err, ExotelRateLimited)
    assert err.retry_after == 3.0


def test_a_429_without_hints_has_no_retry_after() -> None:
    err = parse_error_response(429, {}, b"")
    assert isinstance(err, ExotelRateLimited)
    assert err.retry_after is None


def test_a_503_with_retry_after_carries_it_too() -> None:
    err = parse_error_response(503, {"Retry-After": "5"}, b"")
    assert isinstance(err, ExotelUnavailable)
    assert err.retry_after == 5.0


# ---------------------------------------------------------------- transport errors

_REQUEST = httpx.Request("POST", "https://api.exotel.com/v1/Accounts/x/Calls/connect.json")


@pytest.mark.parametrize(
    ("exc", "maybe_sent"),
    [
        (httpx.ConnectError("connection refused", request=_REQUEST), False),
        (httpx.ConnectTimeout("connect timed out", request=_REQUEST), False),
        (httpx.PoolTimeout("pool exhausted", request=_REQUEST), False),
        (httpx.ReadTimeout("read timed out", request=_REQUEST), True),
        (httpx.WriteTimeout("write timed out", request=_REQUEST), True),
        (httpx.ReadError("connection reset", request=_REQUEST), True),
        (httpx.RemoteProtocolError("server disconnected", request=_REQUEST), True),
    ],
)
def test_transport_failures_become_timeouts_that_say_whether_the_request_may_have_been_sent(
    exc: httpx.HTTPError, maybe_sent: bool
) -> None:
    err = from_transport_error(exc, endpoint="v1.connect")
    assert type(err) is ExotelTimeout
    assert err.maybe_sent is maybe_sent
    assert err.retryable is True
    assert err.http_status is None
    assert str(err).startswith(f"v1.connect: {type(exc).__name__}")


def test_transport_error_messages_hide_phone_numbers_and_secrets() -> None:
    exc = httpx.ConnectError("failed for +919876543210 with tok-123", request=_REQUEST)
    err = from_transport_error(exc, endpoint="v1.connect", redact=["tok-123"])
    assert "9876543210" not in str(err)
    assert "tok-123" not in str(err)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ExotelRateLimited("slow down"), "rate_limited"),
        (ExotelTimeout("read timeout"), "exotel_timeout"),
        (ExotelUnavailable("502 Bad Gateway"), "exotel_unavailable"),
        (ExotelAuthError("401 Unauthorized"), "exotel_auth"),
        (ExotelNotFound("not found"), "exotel_not_found"),
        (ExotelRejected("User device is currently busy"), "exotel_rejected"),
        (ExotelInvalidResponse("no Call.Sid"), "exotel_rejected"),
    ],
)
def test_each_error_class_carries_its_result_code(error: ExotelError, code: str) -> None:
    assert error.code == code


def test_an_errors_repr_names_its_class_and_fields() -> None:
    err = parse_error_response(404, {}, sample("restexception_404.json"))
    assert repr(err) == (
        "ExotelNotFound(http_status=404, exotel_code='404', message='not found', "
        "retryable=False, maybe_sent=False)"
    )
