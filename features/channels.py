"""Bespoke's output channels, in one place: name, contract and what each record is keyed by.

A channel is a Kafka topic (``Settings.topic(name)``: the prefix plus the name), a JSONL
file under a file run's output directory, and a name in the run report.

>>> DECISION_RECORDS.name, DECISION_RECORDS.contract.__name__
('decision_records', 'DecisionRecord')
>>> [c.name for c in CHANNELS][:3]
['feed_updates', 'offers', 'configurations']
"""

from __future__ import annotations

from typing import NamedTuple

from pydantic import BaseModel

from features.events import (
    Configuration,
    ControlAudit,
    DeadLetter,
    DecisionRecord,
    DriftAlert,
    FeatureQuality,
    FeedUpdate,
    LateEvent,
    ModelChange,
    Offer,
    PolicyChange,
    ReviewRequest,
    TrainingExample,
)


class Channel(NamedTuple):
    name: str
    contract: type[BaseModel]
    key: str  # what the records are keyed (and partitioned) by


FEED = Channel("feed_updates", FeedUpdate, "user id: the feed the app shows the user")
OFFERS = Channel("offers", Offer, "user id")
CONFIGURATIONS = Channel("configurations", Configuration, "user id")
DEAD_LETTERS = Channel("dead_letters", DeadLetter, "'<source>:<partition>' of the input")
LATE_EVENTS = Channel("late_events", LateEvent, "item sku, or the user's pseudonym")
FEATURE_QUALITY = Channel("feature_quality", FeatureQuality, "feature view name")
DECISION_RECORDS = Channel("decision_records", DecisionRecord, "the user's pseudonym")
POLICY_CHANGES = Channel("policy_changes", PolicyChange, "policy pack name")
CONTROL_AUDIT = Channel("control_audit", ControlAudit, "id of the control's signing key")
TRAINING_EXAMPLES = Channel("training_examples", TrainingExample, "the user's pseudonym")
MODEL_CHANGES = Channel("model_changes", ModelChange, "the model's name")
DRIFT_ALERTS = Channel("drift_alerts", DriftAlert, "the monitor's name")
REVIEW_REQUESTS = Channel("review_requests", ReviewRequest, "the user's pseudonym")

CHANNELS: tuple[Channel, ...] = (FEED, OFFERS, CONFIGURATIONS, DEAD_LETTERS, LATE_EVENTS,
                                 FEATURE_QUALITY, DECISION_RECORDS, POLICY_CHANGES,
                                 CONTROL_AUDIT, TRAINING_EXAMPLES, MODEL_CHANGES,
                                 DRIFT_ALERTS, REVIEW_REQUESTS)
NAMES: tuple[str, ...] = tuple(c.name for c in CHANNELS)
