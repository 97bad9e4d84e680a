"""Kafka ingest (`llmpulse collect`): consumer group member, per-topic decoders, dead letters, metrics.

See docs/kafka.md for guarantees and operations; `llmpulse.runtime.build_kafka_collector` wires it from Settings.
"""
