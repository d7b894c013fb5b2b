"""Kafka brokers voicebus can start on this machine: Apache Kafka from its jars, or Tansu."""
