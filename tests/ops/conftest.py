"""Fixtures of the Kafka tests (see tests/producers/_kafka.py)."""

from tests.producers._kafka import kafka_bootstrap, make_topic

__all__ = ["kafka_bootstrap", "make_topic"]
