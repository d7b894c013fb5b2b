"""Topic names: the public contract of DESIGN.md, in one place."""

from typing import Final

CALL_CONNECT: Final = "call.connect"
LWB_ACTION: Final = "lwb.action"
LEG_HANGUP: Final = "leg.hangup"
COMMAND_TOPICS: Final = (CALL_CONNECT, LWB_ACTION, LEG_HANGUP)

CALL_CONNECT_RESULT: Final = "call.connect.result"
LWB_ACTION_RESULT: Final = "lwb.action.result"
LEG_HANGUP_RESULT: Final = "leg.hangup.result"
CALL_STATUS: Final = "call.status"
FACT_TOPICS: Final = (CALL_CONNECT_RESULT, LWB_ACTION_RESULT, LEG_HANGUP_RESULT, CALL_STATUS)

RESULT_TOPIC: Final = {
    CALL_CONNECT: CALL_CONNECT_RESULT,
    LWB_ACTION: LWB_ACTION_RESULT,
    LEG_HANGUP: LEG_HANGUP_RESULT,
}


def dlq(topic: str) -> str:
    """The dead-letter topic of ``topic`` (``<topic>.dlq``)."""
    return f"{topic}.dlq"


DLQ_TOPICS: Final = tuple(dlq(t) for t in (*COMMAND_TOPICS, CALL_STATUS))
ALL_TOPICS: Final = (*COMMAND_TOPICS, *FACT_TOPICS, *DLQ_TOPICS)
