"""Topic names: the public contract, in one place (command topics from the command table)."""

from typing import Final

from contracts.catalog import COMMANDS

CALL_CONNECT: Final = "call.connect"
LWB_ACTION: Final = "lwb.action"
LEG_HANGUP: Final = "leg.hangup"
COMMAND_TOPICS: Final = tuple(spec.topic for spec in COMMANDS)

CALL_CONNECT_RESULT: Final = "call.connect.result"
LWB_ACTION_RESULT: Final = "lwb.action.result"
LEG_HANGUP_RESULT: Final = "leg.hangup.result"
CALL_STATUS: Final = "call.status"

#: command topic -> its result topic
RESULT_TOPIC: Final = {spec.topic: spec.result_topic for spec in COMMANDS}
RESULT_TOPICS: Final = tuple(RESULT_TOPIC.values())
FACT_TOPICS: Final = (*RESULT_TOPICS, CALL_STATUS)


def dlq(topic: str) -> str:
    """The dead-letter topic of ``topic`` (``<topic>.dlq``)."""
    return f"{topic}.dlq"


DLQ_TOPICS: Final = tuple(dlq(t) for t in (*COMMAND_TOPICS, CALL_STATUS))
ALL_TOPICS: Final = (*COMMAND_TOPICS, *FACT_TOPICS, *DLQ_TOPICS)
