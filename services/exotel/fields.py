"""Exotel's field names, one namespace per API, spelled as Exotel spells them.

The one vocabulary of Exotel's requests, answers and status callbacks: the executor's
mapping writes requests with it, the client's models (:mod:`services.exotel.models`) read
answers with it, the ingress (``services/ingress/parsing.py``) reads callbacks with it, and
the sandbox writes its answers and callbacks and reads its requests with it. Each keeps its
own leniency: the models match keys case-insensitively, the ingress matches exactly and
refuses what it cannot read, the sandbox matches request parameters case-insensitively.

* :class:`V1`: the v1 Calls API (CamelCase): connect, call details, bulk call details,
  the status callback and the ``RestException`` error;
* :class:`V2` and :class:`V3`: the CCM call APIs (snake_case), sharing :class:`Ccm`'s
  envelope and fields;
* :class:`Lwb`: the LWB legs API: the monitor-leg form (CamelCase like v1) and the legs it
  answers and calls back with (all lower case, as the LWB document shows them);
* :class:`Legs`: the completed-call Legs API (CamelCase);
* :class:`Numbers`: the v1 Number metadata API (CamelCase);
* :class:`Passthru`: the query parameters of a call flow's Passthru applet (mixed case:
  ``CallSid``, ``digits``, ``flow_id``).

Exotel's spelling of one name varies between documents and captures (``CallSid``,
``callsid``, ``call_sid``; ``CallFrom``, ``Callfrom``): :func:`fold` is the one
spelling-insensitive form of a name, what the ingress compares callback keys by, and
:func:`words` / :func:`spell` render a name in another spelling (the sandbox's setting).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Final, Literal

__all__ = [
    "V1",
    "V2",
    "V3",
    "Ccm",
    "Legs",
    "Lwb",
    "Numbers",
    "Passthru",
    "Spelling",
    "fold",
    "indexed",
    "spell",
    "words",
]

#: How a payload's keys are spelled: ``CallSid``, ``callsid``, ``call_sid``.
Spelling = Literal["PascalCase", "lowercase", "snake_case"]
SPELLINGS: Final[tuple[Spelling, ...]] = ("PascalCase", "lowercase", "snake_case")

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


@functools.lru_cache(maxsize=4096)
def fold(name: str) -> str:
    """A name's spelling-insensitive form: ``CallSid``, ``callsid``, ``call_sid`` and
    ``Call-Sid`` all fold to ``callsid``. Cached: every callback folds the same few dozen
    field names (bounded: a payload's unknown keys cannot grow it without end)."""
    return name.replace("_", "").replace("-", "").lower()


def words(name: str) -> list[str]:
    """The words of a PascalCase or snake_case name: ``OnCallDuration`` -> on, call,
    duration. A lower-case name without separators is one word (the LWB document's
    ``oncallduration`` lost its word breaks: :data:`Lwb.PASCAL` restores them)."""
    return [word.lower() for word in _WORD.findall(Lwb.PASCAL.get(name, name))]


def spell(name: str, spelling: Spelling) -> str:
    """``name`` in ``spelling``: ``CallSid`` -> ``callsid`` / ``call_sid``; ``legsid`` ->
    ``LegSid``."""
    parts = words(name) or [name]
    if spelling == "lowercase":
        return "".join(parts)
    if spelling == "snake_case":
        return "_".join(parts)
    return "".join(part.capitalize() for part in parts)


def indexed(name: str, index: int) -> str:
    """A form list item: ``StatusCallbackEvents[0]``."""
    return f"{name}[{index}]"


class V1:
    """The v1 Calls API."""

    # -- connect: the request form
    FROM: Final = "From"
    TO: Final = "To"
    URL: Final = "Url"
    CALLER_ID: Final = "CallerId"
    CALL_TYPE: Final = "CallType"
    TIME_LIMIT: Final = "TimeLimit"
    TIME_OUT: Final = "TimeOut"
    WAIT_URL: Final = "WaitUrl"
    RECORD: Final = "Record"
    RECORDING_CHANNELS: Final = "RecordingChannels"
    RECORDING_FORMAT: Final = "RecordingFormat"
    START_PLAYBACK_TO: Final = "StartPlaybackTo"
    START_PLAYBACK_VALUE: Final = "StartPlaybackValue"
    CUSTOM_FIELD: Final = "CustomField"
    STATUS_CALLBACK: Final = "StatusCallback"
    STATUS_CALLBACK_CONTENT_TYPE: Final = "StatusCallbackContentType"
    #: a list: ``StatusCallbackEvents[0]``, ``[1]`` (see :func:`indexed`)
    STATUS_CALLBACK_EVENTS: Final = "StatusCallbackEvents"

    # -- the Call object (connect, call details, bulk call details)
    CALL: Final = "Call"
    CALLS: Final = "Calls"
    SID: Final = "Sid"
    PARENT_CALL_SID: Final = "ParentCallSid"
    ACCOUNT_SID: Final = "AccountSid"
    DATE_CREATED: Final = "DateCreated"
    DATE_UPDATED: Final = "DateUpdated"
    STATUS: Final = "Status"
    START_TIME: Final = "StartTime"
    END_TIME: Final = "EndTime"
    DURATION: Final = "Duration"
    PRICE: Final = "Price"
    DIRECTION: Final = "Direction"
    ANSWERED_BY: Final = "AnsweredBy"
    FORWARDED_FROM: Final = "ForwardedFrom"
    CALLER_NAME: Final = "CallerName"
    URI: Final = "Uri"
    RECORDING_URL: Final = "RecordingUrl"
    #: the ExoPhone the call used (``PhoneNumber`` in some answers)
    PHONE_NUMBER_SID: Final = "PhoneNumberSid"
    PHONE_NUMBER: Final = "PhoneNumber"
    #: ``details=true``: ``Details`` with ``ConversationDuration``, ``Leg1Status``,
    #: ``Leg2Status`` and ``Legs: [{"Leg": {"Id", "OnCallDuration"}}]``
    DETAILS: Final = "Details"
    CONVERSATION_DURATION: Final = "ConversationDuration"
    LEGS: Final = "Legs"
    LEG: Final = "Leg"
    LEG_ID: Final = "Id"
    ON_CALL_DURATION: Final = "OnCallDuration"

    @staticmethod
    def leg_status(leg_id: int) -> str:
        """``Leg1Status`` (the ``From`` leg), ``Leg2Status`` (the ``To`` leg)."""
        return f"Leg{leg_id}Status"

    # -- bulk call details: query and paging
    PAGE_SIZE: Final = "PageSize"
    SORT_BY: Final = "SortBy"
    AFTER: Final = "After"
    BEFORE: Final = "Before"
    METADATA: Final = "Metadata"
    TOTAL: Final = "Total"
    FIRST_PAGE_URI: Final = "FirstPageUri"
    PREV_PAGE_URI: Final = "PrevPageUri"
    NEXT_PAGE_URI: Final = "NextPageUri"

    # -- the status callback (also ``Status``, ``From``, ``To``, ``Legs[i][Status]`` ...)
    CALL_SID: Final = "CallSid"
    EVENT_TYPE: Final = "EventType"

    # -- errors: ``{"RestException": {"Status", "Code", "Message", "Description"}}``,
    #    in XML inside ``<TwilioResponse>``
    TWILIO_RESPONSE: Final = "TwilioResponse"
    REST_EXCEPTION: Final = "RestException"
    CODE: Final = "Code"
    MESSAGE: Final = "Message"
    DESCRIPTION: Final = "Description"


class Ccm:
    """What the v2 and v3 call APIs share: the envelope, the request body's common
    fields, the call's times and durations, and the status callback's blocks."""

    # -- the envelope: {"http_code", "response": {"code", "status", "error_data", <block>}}
    REQUEST_ID: Final = "request_id"
    METHOD: Final = "method"
    HTTP_CODE: Final = "http_code"
    METADATA: Final = "metadata"
    RESPONSE: Final = "response"
    CODE: Final = "code"
    STATUS: Final = "status"
    ERROR_DATA: Final = "error_data"
    MESSAGE: Final = "message"
    DESCRIPTION: Final = "description"

    # -- the request body
    FROM: Final = "from"
    TO: Final = "to"
    VIRTUAL_NUMBER: Final = "virtual_number"
    WAIT_AUDIO_URL: Final = "wait_audio_url"
    MAX_TIME_LIMIT: Final = "max_time_limit"
    ATTEMPT_TIME_OUT: Final = "attempt_time_out"
    CUSTOM_FIELD: Final = "custom_field"
    RECORDING: Final = "recording"
    #: a list of {"event", "url"} (v3 also "method", "content_type")
    STATUS_CALLBACK: Final = "status_callback"
    EVENT: Final = "event"
    URL: Final = "url"

    # -- the call (answers and callbacks)
    #: v2's call sid; v3's in leg_details (its call_details say "sid")
    CALL_SID: Final = "call_sid"
    #: a party's number: v2 agent / customer details, v3 "from", "to" and legs
    CONTACT_URI: Final = "contact_uri"
    GROUP_ID: Final = "group_id"
    GROUP_NAME: Final = "group_name"
    DIRECTION: Final = "direction"
    CREATED_TIME: Final = "created_time"
    UPDATED_TIME: Final = "updated_time"
    START_TIME: Final = "start_time"
    END_TIME: Final = "end_time"
    TOTAL_DURATION: Final = "total_duration"
    TOTAL_TALK_TIME: Final = "total_talk_time"
    #: a list of {"url"}
    RECORDINGS: Final = "recordings"
    APP_ID: Final = "app_id"
    APP_NAME: Final = "app_name"
    DIGITS: Final = "digits"

    # -- the status callback: {"event_details": {"event_type"}, "call_details": {...}}
    EVENT_DETAILS: Final = "event_details"
    EVENT_TYPE: Final = "event_type"
    CALL_DETAILS: Final = "call_details"


class V2(Ccm):
    """The v2 CCM call API (``response.data``)."""

    DATA: Final = "data"
    #: inside "from" / "to" of the request
    USER_CONTACT_URI: Final = "user_contact_uri"
    CUSTOMER_CONTACT_URI: Final = "customer_contact_uri"
    RECORDING_CHANNELS: Final = "recording_channels"
    CALL_STATE: Final = "call_state"
    CALL_STATUS: Final = "call_status"
    #: {"user_id", "user_name", "contact_uri", "group_id", "group_name", "status"}
    AGENT_DETAILS: Final = "assigned_agent_details"
    #: {"contact_name", "contact_uri", "status"}
    CUSTOMER_DETAILS: Final = "customer_details"
    USER_ID: Final = "user_id"
    USER_NAME: Final = "user_name"
    CONTACT_NAME: Final = "contact_name"


class V3(Ccm):
    """The v3 CCM call API (``response.call_details``, ``response.leg_details``)."""

    #: inside "from" of the request
    STATE_MANAGEMENT: Final = "state_management"
    #: inside "recording": {"record", "channels", "format"}
    RECORD: Final = "record"
    CHANNELS: Final = "channels"
    FORMAT: Final = "format"
    #: a list of {"event", "to", "value"}
    PLAYBACK: Final = "playback"
    VALUE: Final = "value"
    STREAMING: Final = "streaming"
    #: a status_callback item's own method and content type
    CONTENT_TYPE: Final = "content_type"
    SID: Final = "sid"
    STATE: Final = "state"
    #: in call_details: the URL of the call's legs
    LEGS: Final = "legs"
    #: GET .../calls/{sid}/legs: {"call_sid", "account_sid", "from": [...], "to": [...]}
    LEG_DETAILS: Final = "leg_details"
    ACCOUNT_SID: Final = "account_sid"
    NAME: Final = "name"
    DATE_CREATED: Final = "date_created"
    DATE_UPDATED: Final = "date_updated"


class Lwb:
    """The LWB legs API: listen, whisper, barge and hang-up."""

    # -- the request forms (create: POST legs; upgrade and hang-up: PUT legs/{sid})
    ACTION: Final = "action"
    PHONE_NUMBER: Final = "PhoneNumber"
    TARGET_LEG_SID: Final = "TargetLegSid"
    STATUS_CALLBACK: Final = V1.STATUS_CALLBACK
    STATUS_CALLBACK_CONTENT_TYPE: Final = V1.STATUS_CALLBACK_CONTENT_TYPE
    STATUS_CALLBACK_EVENTS: Final = V1.STATUS_CALLBACK_EVENTS
    CUSTOM_FIELD: Final = V1.CUSTOM_FIELD
    HANGUP: Final = "hangup"

    # -- the legs it answers with (activelegs, create, upgrade, hang-up): lower case
    LEGS: Final = "legs"
    LEG: Final = "leg"
    SID: Final = "sid"
    CALL_SID: Final = "callsid"
    ACCOUNT_SID: Final = "accountsid"
    LEG_PHONE_NUMBER: Final = "phonenumber"
    #: the documented monitor leg's answer says "endusernumber" instead
    END_USER_NUMBER: Final = "endusernumber"
    STATUS: Final = "status"
    #: inbound | outbound | outbound-dial | monitor
    ORIGIN: Final = "origin"
    #: listen | whisper | barge (monitor legs), hangup
    LAST_ACTION: Final = "lastaction"
    DATE_CREATED: Final = "datecreated"
    DATE_UPDATED: Final = "dateupdated"
    START_TIME: Final = "starttime"
    END_TIME: Final = "endtime"
    EXOPHONE: Final = "exophone"
    BACKUP_EXOPHONE: Final = "backupexophone"
    URI: Final = "uri"

    # -- the monitor leg's terminal status callback (the same lower-case names, plus)
    LEG_SID: Final = "legsid"
    ON_CALL_DURATION: Final = "oncallduration"
    LEG_CUSTOM_FIELD: Final = "customfield"
    EVENT_TYPE: Final = "eventtype"

    #: Top-level keys only a leg's callback has (a call's callback has them inside its
    #: ``Legs`` at most): what tells a monitor leg's event from the call's own.
    ONLY_IN_LEG_EVENTS: Final = (LEG_SID, ORIGIN, LAST_ACTION, ON_CALL_DURATION)

    #: The same names with their word breaks, as the Legs API spells its leg objects
    #: (``LegSid``, ``CallSid``, ``LastAction``): the capture of the LWB document lost all
    #: case, so Exotel may well send these. XML answers use them as element names.
    PASCAL: Final[Mapping[str, str]] = {
        SID: "Sid",
        LEG_SID: "LegSid",
        CALL_SID: "CallSid",
        ACCOUNT_SID: "AccountSid",
        LEG_PHONE_NUMBER: "PhoneNumber",
        END_USER_NUMBER: "EndUserNumber",
        STATUS: "Status",
        ORIGIN: "Origin",
        LAST_ACTION: "LastAction",
        DATE_CREATED: "DateCreated",
        DATE_UPDATED: "DateUpdated",
        START_TIME: "StartTime",
        END_TIME: "EndTime",
        EXOPHONE: "ExoPhone",
        BACKUP_EXOPHONE: "BackupExoPhone",
        URI: "Uri",
        ON_CALL_DURATION: "OnCallDuration",
        LEG_CUSTOM_FIELD: "CustomField",
        EVENT_TYPE: "EventType",
    }


class Legs:
    """The completed-call Legs API (``GET .../Calls/{sid}/Legs``), CamelCase."""

    META_DATA: Final = "MetaData"
    TOTAL: Final = "Total"
    COUNT: Final = "Count"
    LEGS: Final = "Legs"
    LEG: Final = "Leg"
    SID: Final = "Sid"
    CALL_SID: Final = "CallSid"
    ACCOUNT_SID: Final = "AccountSid"
    PHONE_NUMBER: Final = "PhoneNumber"
    STATUS: Final = "Status"
    ORIGIN: Final = "Origin"
    LAST_ACTION: Final = "LastAction"
    DATE_CREATED: Final = "DateCreated"
    DATE_UPDATED: Final = "DateUpdated"
    START_TIME: Final = "StartTime"
    END_TIME: Final = "EndTime"
    ON_CALL_DURATION: Final = "OnCallDuration"
    EXOPHONE: Final = "ExoPhone"
    URI: Final = "Uri"


class Numbers:
    """The v1 Number metadata API (``GET .../Numbers/{number}``), CamelCase:
    ``{"Numbers": {"PhoneNumber", "Circle", "CircleName", "Type", "Operator",
    "OperatorName", "DND"}}``."""

    NUMBERS: Final = "Numbers"
    PHONE_NUMBER: Final = "PhoneNumber"
    CIRCLE: Final = "Circle"
    CIRCLE_NAME: Final = "CircleName"
    #: ``Mobile`` or ``Landline``
    TYPE: Final = "Type"
    OPERATOR: Final = "Operator"
    OPERATOR_NAME: Final = "OperatorName"
    #: ``Yes``, ``No`` or ``Unavailable``
    DND: Final = "DND"


class Passthru:
    """A call flow's Passthru applet: the query parameters of its GET (passthru-applet.txt).

    Only some are sent, depending on where in the flow the applet sits. Case has varied
    between Exotel's articles (``CallFrom`` / ``Callfrom``), and older ones name ``From`` /
    ``To`` instead of ``CallFrom`` / ``CallTo``: compare them with :func:`fold`.
    """

    CALL_SID: Final = "CallSid"
    #: incoming: the caller; outgoing: the number the call is made from
    CALL_FROM: Final = "CallFrom"
    #: incoming: the ExoPhone the call landed on; outgoing: the number dialled
    CALL_TO: Final = "CallTo"
    #: the older articles' names for CallFrom / CallTo
    FROM: Final = "From"
    TO: Final = "To"
    #: ``incoming`` or ``outbound-dial``
    DIRECTION: Final = "Direction"
    CREATED: Final = "Created"
    #: seconds from the dial-out of the second leg until it ended (0: no second leg yet)
    DIAL_CALL_DURATION: Final = "DialCallDuration"
    START_TIME: Final = "StartTime"
    #: Exotel's server time when it sent this request (changes when a request is repeated)
    CURRENT_TIME: Final = "CurrentTime"
    #: always :data:`EPOCH_END_TIME`, never the real end
    END_TIME: Final = "EndTime"
    #: where the call is in its life: :data:`CALL_TYPES`
    CALL_TYPE: Final = "CallType"
    #: sent to the Connect applet's URL: queued, ringing, in-progress, completed, ...
    CALL_STATUS: Final = "CallStatus"
    #: what a Gather applet collected, wrapped in double quotes: ``"123"``
    DIGITS: Final = "digits"
    RECORDING_URL: Final = "RecordingUrl"
    #: the agent's number the Connect applet dialled
    DIAL_WHOM_NUMBER: Final = "DialWhomNumber"
    FLOW_ID: Final = "flow_id"
    TENANT_ID: Final = "tenant_id"
    CUSTOM_FIELD: Final = "CustomField"

    INCOMING: Final = "incoming"
    OUTBOUND_DIAL: Final = "outbound-dial"
    EPOCH_END_TIME: Final = "1970-01-01 05:30:00"
    #: call-attempt: IVR only, no Connect applet reached; completed: a conversation
    #: happened; client-hangup: the caller hung up during the Connect applet; incomplete:
    #: Connect applet, no agent picked up; voicemail: went to the voicemail applet
    CALL_TYPES: Final = ("call-attempt", "completed", "client-hangup", "incomplete", "voicemail")
    #: the parameters only a Passthru (or a Connect applet's URL) sends, never a status
    #: callback: what tells a flow notification from a v1 callback by its content
    ONLY_IN_FLOWS: Final = (
        CALL_FROM,
        CALL_TO,
        CALL_TYPE,
        CALL_STATUS,
        CURRENT_TIME,
        DIAL_CALL_DURATION,
        DIAL_WHOM_NUMBER,
        DIGITS,
        FLOW_ID,
    )
