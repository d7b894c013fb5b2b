"""What the broker itself says about topics and groups: configs, leaders, how many records
are left, end and committed offsets."""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType


async def topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    """Every config of ``topic`` with its effective value (DescribeConfigs)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    configs: dict[str, str] = {}
    for response in responses:
        for resource in response.resources:
            error_code, _message, _type, _name, entries = resource[:5]
            assert error_code == 0, f"DescribeConfigs({topic}) failed: {resource}"
            for entry in entries:
                configs[entry[0]] = entry[1]
    return configs


async def describe(bootstrap: str, topics: list[str]) -> list[Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return list(await admin.describe_topics(topics))
    finally:
        await admin.close()


async def leaders(bootstrap: str, topics: list[str]) -> Counter[int]:
    """How many partitions of ``topics`` each broker leads."""
    counts: Counter[int] = Counter()
    for topic in await describe(bootstrap, topics):
        for partition in topic["partitions"]:
            counts[int(partition["leader"])] += 1
    return counts


async def records_left(bootstrap: str, topic: str) -> int:
    """How many records reading ``topic`` from its beginning yields now (after compaction
    or retention, fewer than were written)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await partitions_of(bootstrap, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        count = 0
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            batches = await consumer.getmany(timeout_ms=500)
            count += sum(len(records) for records in batches.values())
        return count
    finally:
        await consumer.stop()


async def partitions_of(bootstrap: str, topic: str) -> list[TopicPartition]:
    (described,) = await describe(bootstrap, [topic])
    return [TopicPartition(topic, int(p["partition"])) for p in described["partitions"]]


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """``group``'s committed offset per partition of ``topic`` (partitions it committed on)."""
    partitions = await partitions_of(bootstrap, topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The end offset of each partition of ``topic``."""
    partitions = await partitions_of(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


async def caught_up(bootstrap: str, group: str, topic: str) -> bool:
    """Whether ``group`` has committed past every record of ``topic``.

    Not "committed offset = end offset": a transaction's commit marker takes an offset of
    its own, and a consumer committing each record's offset + 1 (FastStream's acks) stays
    one below the end of a partition whose last write was a transaction's."""
    committed = await committed_offsets(bootstrap, group, topic)
    ends = await end_offsets(bootstrap, topic)
    behind = {p: committed.get(p, 0) for p, end in ends.items() if committed.get(p, 0) < end}
    if not behind:
        return True
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = {TopicPartition(topic, p): offset for p, offset in behind.items()}
        consumer.assign(list(tps))
        for tp, offset in tps.items():
            consumer.seek(tp, offset)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp.partition]]:
            batches = await consumer.getmany(timeout_ms=500)
            if any(batches.values()):
                return False
        return True
    finally:
        await consumer.stop()
