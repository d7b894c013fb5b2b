"""ExotelClient's read-only lookups against a fake Exotel (httpx.MockTransport): Number
metadata (with Exotel's own samples), its URL, rate-limit family and refusals."""

from __future__ import annotations

import pytest

from services.exotel import ExotelRejected
from services.exotel._payload import load_payload
from services.exotel.models import NumberMetadata
from tests.exotel.conftest import SID, Harness, sample

GUJARAT = "Gujarat Telecom Circle (includes Daman & Diu, Dadra & Nagar Haveli)"


async def test_number_metadata_is_a_get_of_the_numbers_resource(harness: Harness) -> None:
    harness.exotel.reply(200, sample("v1_number_metadata.json"))

    found = await harness.client.number_metadata("09876530240")

    request = harness.exotel.last
    assert request.method == "GET"
    assert str(request.url) == f"https://api.exotel.com/v1/Accounts/{SID}/Numbers/09876530240.json"
    assert harness.throttle.acquired == [("default", "get")]
    assert harness.observer.calls[0]["endpoint"] == "v1.numbers.get"
    assert (found.phone_number, found.circle, found.circle_name) == ("0XXXXX30240", "GJ", GUJARAT)
    assert (found.number_type, found.operator, found.operator_name, found.dnd) == (
        "Mobile",
        "R",
        "Reliance",
        "Yes",
    )


async def test_an_e164_number_keeps_its_plus_in_the_path(harness: Harness) -> None:
    harness.exotel.reply(200, sample("v1_number_metadata.json"))
    await harness.client.number_metadata("+919876530240")
    assert harness.exotel.last.url.raw_path.endswith(b"/Numbers/%2B919876530240.json")


def test_the_xml_sample_reads_like_the_json_one() -> None:
    from_xml = NumberMetadata.from_response(load_payload(sample("v1_number_metadata.xml")))
    from_json = NumberMetadata.from_response(load_payload(sample("v1_number_metadata.json")))
    assert from_xml.model_dump(exclude={"raw"}) == from_json.model_dump(exclude={"raw"})
    assert from_xml.circle_name == GUJARAT


@pytest.mark.parametrize("bad", ["", "98765 43210", "../Calls", "+91abc", "1" * 21])
async def test_a_malformed_number_never_reaches_a_url(harness: Harness, bad: str) -> None:
    harness.exotel.reply(200, sample("v1_number_metadata.json"))
    with pytest.raises(ExotelRejected, match="invalid number"):
        await harness.client.number_metadata(bad)
    assert harness.exotel.requests == []
