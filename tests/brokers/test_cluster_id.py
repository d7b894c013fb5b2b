"""The launcher's KRaft cluster ids: valid for ``kafka-storage format -t`` every time."""

from __future__ import annotations

import base64

from services.brokers.apache_kafka import _cluster_id


def test_a_cluster_id_is_16_bytes_and_never_reads_as_an_option() -> None:
    ids = [_cluster_id() for _ in range(4096)]  # about 64 would start with "-" otherwise
    assert not [i for i in ids if i.startswith("-")]
    assert {len(base64.urlsafe_b64decode(i + "==")) for i in ids} == {16}
    assert len(set(ids)) == len(ids)
