"""Callback URLs are unforgeable per command: the executor signs, the ingress verifies."""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common import callback_signature
from services.common.callback_signature import (
    SIGNATURE_CHARS,
    SIGNATURE_PARAM,
    SIGNED_PARAMS,
    CallbackSigner,
    check_secret,
)
from services.executor.mapping import CallbackTarget
from services.ingress.parsing import CORRELATION_PARAMS

SECRET = "current-signing-secret-0123456789abcdef"
PREVIOUS = "previous-signing-secret-0123456789abcdef"
CORRELATION = {"command_id": "cmd-1", "account": "default", "api": "v1"}


def test_the_signed_parameters_are_the_correlation_parameters() -> None:
    assert SIGNED_PARAMS == CORRELATION_PARAMS


def test_sign_and_verify() -> None:
    signer = CallbackSigner(SECRET)
    sig = signer.sign(CORRELATION)
    assert len(sig) == SIGNATURE_CHARS
    assert signer.verify(CORRELATION, sig)
    assert sig == CallbackSigner(SECRET).sign(dict(reversed(CORRELATION.items())))


@pytest.mark.parametrize(
    "changed",
    [
        {"command_id": "cmd-2"},
        {"account": "other"},
        {"api": "v3"},
        {"command_id": None},
        {"command_id": "cmd-1\x00"},
        {"command_id": "cmd-", "account": "1default"},  # shifting a boundary
    ],
)
def test_any_change_to_the_correlation_breaks_the_signature(changed: dict[str, Any]) -> None:
    signer = CallbackSigner(SECRET)
    sig = signer.sign(CORRELATION)
    assert not signer.verify(CORRELATION | changed, sig)


@pytest.mark.parametrize(
    "sig", [None, "", "x", "A" * SIGNATURE_CHARS, "é" * SIGNATURE_CHARS, "=" * SIGNATURE_CHARS]
)
def test_missing_or_malformed_signatures_are_refused(sig: str | None) -> None:
    assert not CallbackSigner(SECRET).verify(CORRELATION, sig)


def test_other_secrets_do_not_verify_and_rotation_accepts_the_previous() -> None:
    old = CallbackSigner(PREVIOUS).sign(CORRELATION)
    assert not CallbackSigner(SECRET).verify(CORRELATION, old)
    rotating = CallbackSigner(SECRET, PREVIOUS)
    assert rotating.verify(CORRELATION, old)
    assert rotating.sign(CORRELATION) == CallbackSigner(SECRET).sign(CORRELATION)  # signs new


def test_every_secret_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    signer = CallbackSigner(SECRET, PREVIOUS)
    assert signer.verify(CORRELATION, signer.sign(CORRELATION))
    assert len(calls) == 2  # no early exit on the first match


def test_secrets_are_never_in_the_repr_and_must_be_long() -> None:
    assert SECRET not in repr(CallbackSigner(SECRET, PREVIOUS))
    with pytest.raises(ValueError, match="at least 32") as caught:
        check_secret("short-secret")
    assert "short-secret" not in str(caught.value)


def test_the_executor_url_verifies_at_the_ingress() -> None:
    target = CallbackTarget("https://in.example/", "path-token-0123456789", CallbackSigner(SECRET))
    url = target.url(**CORRELATION)
    parts = urlsplit(url)
    assert parts.path == "/exotel/callbacks/path-token-0123456789"
    params = dict(parse_qsl(parts.query))
    sig = params.pop(SIGNATURE_PARAM)
    assert params == CORRELATION
    assert CallbackSigner(SECRET, PREVIOUS).verify(params, sig)
    assert SECRET not in url
    assert SECRET not in repr(target)


def test_without_a_signer_the_url_is_unsigned() -> None:
    url = CallbackTarget("https://in.example", "path-token-0123456789").url(**CORRELATION)
    assert SIGNATURE_PARAM not in dict(parse_qsl(urlsplit(url).query))


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(SIGNED_PARAMS), st.text(max_size=40)),
    st.dictionaries(st.sampled_from(SIGNED_PARAMS), st.text(max_size=40)),
)
def test_signatures_differ_whenever_the_correlation_does(
    a: dict[str, str], b: dict[str, str]
) -> None:
    signer = CallbackSigner(SECRET)
    assert signer.verify(a, signer.sign(b)) == (a == b)


def test_the_command_line_prints_a_signed_query(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALLBACK_SIGNING_SECRET", SECRET)
    assert callback_signature.main(["command_id=c-9", "api=v1"]) == 0
    printed = dict(parse_qsl(capsys.readouterr().out.strip()))
    sig = printed.pop(SIGNATURE_PARAM)
    assert CallbackSigner(SECRET).verify(printed, sig)
    assert callback_signature.main(["token=x"]) == 2
    monkeypatch.setenv("CALLBACK_SIGNING_SECRET", "short")
    assert callback_signature.main([]) == 2
    assert "short" not in capsys.readouterr().err.replace("CALLBACK_SIGNING_SECRET", "")
