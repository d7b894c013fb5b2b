"""Consumer-lag arithmetic (the Kafka part is in test_service.py)."""

from __future__ import annotations

from aiokafka import TopicPartition

from contracts.topics import COMMAND_TOPICS
from services.metrics.lag import WatchedGroup, compute_lag, watched_groups

PARTITIONS = {"call.connect": [0, 1], "lwb.action": [0, 1], "call.status": [0]}
END = {
    TopicPartition("call.connect", 0): 10,
    TopicPartition("call.connect", 1): 5,
    TopicPartition("lwb.action", 0): 4,
    TopicPartition("lwb.action", 1): 0,
    TopicPartition("call.status", 0): 7,
}
BEGINNING = dict.fromkeys(END, 0) | {TopicPartition("lwb.action", 0): 1}


def test_fixed_topics_count_uncommitted_partitions_from_the_beginning():
    group = WatchedGroup("voicebus-executor", ("call.connect", "lwb.action"))
    committed = {TopicPartition("call.connect", 0): 8, TopicPartition("call.connect", 1): -1}
    lag = compute_lag(group, PARTITIONS, committed, BEGINNING, END)
    assert lag == {"call.connect": 2 + 5, "lwb.action": 3}


def test_discovered_topics_are_those_the_group_committed_on():
    group = WatchedGroup("crm-sync")
    committed = {TopicPartition("call.status", 0): 3}
    assert compute_lag(group, PARTITIONS, committed, BEGINNING, END) == {"call.status": 4}


def test_end_offsets_behind_a_commit_count_zero():
    # the embedded broker's end offsets can trail the committed offset
    group = WatchedGroup("g", ("call.status",))
    committed = {TopicPartition("call.status", 0): 9}
    assert compute_lag(group, PARTITIONS, committed, BEGINNING, END) == {"call.status": 0}


def test_watched_groups():
    groups = watched_groups(
        own_group="voicebus-metrics",
        own_topics=("call.status",),
        executor_group="voicebus-executor",
        extra=["crm", "voicebus-metrics"],
    )
    assert [g.group for g in groups] == ["voicebus-executor", "voicebus-metrics", "crm"]
    assert groups[0].topics == COMMAND_TOPICS
    assert groups[2].topics is None
