"""The kcat example ``make run`` prints and README.md shows: one text, run as printed by
tests/integration/test_kcat.py.

kcat is built on librdkafka, like confluent-kafka and Go's and Node's main clients: it needs
a real Kafka (Apache Kafka, or a service speaking its protocol in full). Tansu, ``make
run``'s fallback without Java, cannot serve it.
"""

from __future__ import annotations

#: The address README.md shows: ``make run``'s default (``LOCAL_KAFKA_PORT``).
README_BOOTSTRAP = "127.0.0.1:19092"
COMMAND_ID = "hello-1"
COMMAND = (
    f'{{"command_id":"{COMMAND_ID}","from":"+919876543210","to":"+919812345678",'
    '"caller_id":"08047112345"}'
)
#: kcat's output format for facts: the key and the headers (CloudEvents), then the JSON.
FACT_FORMAT = r"%k %h\n%s\n"
TANSU_NOTE = (
    "Tansu cannot serve librdkafka clients (kcat, confluent-kafka, Go, Node): "
    "install Java 17+ and Maven for a real Apache Kafka, or set KAFKA_BOOTSTRAP_SERVERS"
)


def kcat_example(bootstrap: str = README_BOOTSTRAP) -> str:
    """Publish a ``call.connect`` with kcat, then read its result and its ``call.status``."""
    return (
        f"echo '{COMMAND}' \\\n"
        f"  | kcat -P -b {bootstrap} -t call.connect -k +919876543210\n"
        f"kcat -C -b {bootstrap} -t call.connect.result -o beginning -e -q -f '{FACT_FORMAT}'\n"
        f"kcat -C -b {bootstrap} -t call.status -o beginning -e -q -f '{FACT_FORMAT}'\n"
    )
