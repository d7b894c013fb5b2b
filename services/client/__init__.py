"""A typed helper for services that use voicebus: publish commands, await their results.

```python
from contracts import CallConnect
from services.client import VoicebusClient

async with VoicebusClient(bootstrap_servers="kafka:9092") as voicebus:
    result = await voicebus.send(
        CallConnect.model_validate(
            {"command_id": "order-42-call-1", "from": "+919876543210",
             "to": "+919812345678", "caller_id": "08047112345"}
        ),
        timeout=30,
    )
    print(result.outcome, result.call_sid)
```

See docs/guides/service-teams.md.
"""

from services.client.client import (
    LookupAnswer,
    Published,
    VoicebusClient,
    command_key,
    command_type,
    encode_command,
)
from services.client.errors import (
    CommandNotValid,
    KafkaUnavailable,
    ResultTimeout,
    TopicsMissing,
    VoicebusError,
)
from services.client.reader import Record, TopicReader

__all__ = [
    "CommandNotValid",
    "KafkaUnavailable",
    "LookupAnswer",
    "Published",
    "Record",
    "ResultTimeout",
    "TopicReader",
    "TopicsMissing",
    "VoicebusClient",
    "VoicebusError",
    "command_key",
    "command_type",
    "encode_command",
]
