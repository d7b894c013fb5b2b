"""docs/asyncapi.json: generated from the code, in step with it and with contracts/schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contracts.export import MODELS, SCHEMA_DIR
from contracts.topics import ALL_TOPICS, COMMAND_TOPICS, DLQ_TOPICS, FACT_TOPICS
from services.cli import asyncapi

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return json.loads(DOC.read_text(encoding="utf-8"))


def test_checked_in_document_matches_the_code() -> None:
    assert not asyncapi.drifted(DOC), (
        "docs/asyncapi.json drifts from the code: run `python -m services.cli.asyncapi`"
    )
    assert asyncapi.main(["--check"]) == 0


def test_every_topic_is_a_channel(document: dict[str, Any]) -> None:
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(ALL_TOPICS)


def test_voicebus_receives_commands_and_sends_facts(document: dict[str, Any]) -> None:
    actions = {}
    for operation in document["operations"].values():
        channel = operation["channel"]["$ref"].removeprefix("#/channels/")
        actions[document["channels"][channel]["address"]] = operation["action"]
    assert {t: actions[t] for t in COMMAND_TOPICS} == dict.fromkeys(COMMAND_TOPICS, "receive")
    assert {t: actions[t] for t in (*FACT_TOPICS, *DLQ_TOPICS)} == dict.fromkeys(
        (*FACT_TOPICS, *DLQ_TOPICS), "send"
    )


def messages_by_topic(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for channel in document["channels"].values():
        (ref,) = channel["messages"].values()
        name = ref["$ref"].removeprefix("#/components/messages/")
        found[channel["address"]] = document["components"]["messages"][name]
    return found


def test_payloads_are_the_exported_json_schemas(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for topic, message in messages_by_topic(document).items():
        if topic in DLQ_TOPICS:
            assert message["payload"]["format"] == "binary"
            assert "error" in message["headers"]["required"]
            continue
        model = message["payload"]["$ref"].removeprefix("#/components/schemas/")
        assert model in MODELS, topic
        exported = json.loads((SCHEMA_DIR / f"{model}.json").read_text())
        assert message["externalDocs"]["url"] == exported["$id"]
        assert message["x-voicebus-json-schema"] == f"contracts/schemas/{model}.json"
        assert (SCHEMA_DIR.parent.parent / message["x-voicebus-json-schema"]).is_file()
        embedded = schemas[model]
        assert set(embedded["properties"]) == set(exported["properties"]), model
        assert set(embedded.get("required", [])) == set(exported.get("required", [])), model


def test_facts_document_cloudevents_headers_and_keys(document: dict[str, Any]) -> None:
    for topic, message in messages_by_topic(document).items():
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
        if topic in FACT_TOPICS:
            assert "ce_specversion" in message["headers"]["required"]
            assert message["correlationId"]["location"] == "$message.payload#/command_id"
