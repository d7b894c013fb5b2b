"""The multipart fast path answers what starlette's parser (python-multipart) answers, or
``None`` and leaves the body to it."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.types import Message

from services.ingress.multipart import simple_form
from tests.ingress import samples

BOUNDARY = "exotelboundary42"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
LIMITS = {"max_fields": 1000, "max_part_size": 65536}


def full_parser(body: bytes, content_type: str = CONTENT_TYPE) -> list[tuple[str, str]]:
    async def parse() -> list[tuple[str, str]]:
        async def receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "query_string": b"",
            "headers": [(b"content-type", content_type.encode())],
        }
        form = await Request(scope, receive).form(max_files=0, **LIMITS)
        return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]

    return asyncio.run(parse())


def test_the_documented_sample_is_read_as_the_full_parser_reads_it() -> None:
    body = samples.multipart_body(samples.form_pairs())
    fast = simple_form(body, CONTENT_TYPE, **LIMITS)
    assert fast is not None
    assert fast == full_parser(body) == samples.form_pairs()


def test_a_quoted_boundary_and_a_utf8_charset() -> None:
    body = samples.multipart_body([("CallSid", "CA1"), ("Status", "completed")])
    content_type = f'multipart/form-data; boundary="{BOUNDARY}"; charset=utf-8'
    fast = simple_form(body, content_type, **LIMITS)
    assert fast is not None
    assert fast == full_parser(body, content_type)


def test_another_charset_goes_to_the_full_parser() -> None:
    body = samples.multipart_body([("CallSid", "CA1")])
    assert simple_form(body, CONTENT_TYPE + "; charset=latin-1", **LIMITS) is None


names = st.text(
    st.characters(exclude_characters='"\\\r\n%', exclude_categories=["Cs"]), max_size=20
)
values = st.text(st.characters(exclude_categories=["Cs"]), max_size=60).filter(
    lambda v: BOUNDARY not in v
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(names, values), min_size=1, max_size=12))
def test_text_fields_are_read_as_the_full_parser_reads_them(
    pairs: list[tuple[str, str]],
) -> None:
    body = samples.multipart_body(pairs)
    fast = simple_form(body, CONTENT_TYPE, **LIMITS)
    assert fast is None or fast == full_parser(body)


def part(headers: str, value: bytes = b"v") -> bytes:
    return (
        f"--{BOUNDARY}\r\n{headers}\r\n\r\n".encode() + value + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def test_anything_but_plain_text_fields_goes_to_the_full_parser() -> None:
    for body in (
        part('Content-Disposition: form-data; name="f"; filename="a.txt"'),
        part('Content-Disposition: form-data; name="f"\r\nContent-Type: text/plain'),
        part('Content-Disposition: form-data; name="a\\"b"'),
        part("Content-Disposition: form-data; name*=UTF-8''caf%C3%A9"),
        part('Content-Disposition: form-data; name="f"', b"\xff\xfe latin-1"),
        b"preamble\r\n" + part('Content-Disposition: form-data; name="f"'),
        part('Content-Disposition: form-data; name="f"')[:-4],  # no closing delimiter
    ):
        assert simple_form(body, CONTENT_TYPE, **LIMITS) is None, body
    assert (
        simple_form(
            part('Content-Disposition: form-data; name="f"'), "multipart/form-data", **LIMITS
        )
        is None
    )


def test_limits_go_to_the_full_parser_which_refuses() -> None:
    body = samples.multipart_body([("a", "x" * 100)])
    assert simple_form(body, CONTENT_TYPE, max_fields=10, max_part_size=50) is None
    many = samples.multipart_body([(f"f{n}", "v") for n in range(11)])
    assert simple_form(many, CONTENT_TYPE, max_fields=10, max_part_size=50) is None
