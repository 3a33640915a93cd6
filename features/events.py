"""Event contracts: every inbound and outbound event Bespoke reads or writes.

Each event is a strict, frozen pydantic v2 model with a ``type`` discriminator and a
``schema_version``. Strings, lists and maps carry size limits so one bad producer cannot
blow up a worker's memory. Times are integer epoch milliseconds (``ts``), event time.

>>> from features.events import parse_inbound
>>> ev = parse_inbound(b'{"type":"page_view","schema_version":1,"event_id":"e1",'
...                    b'"ts":1700000000000,"user_id":"u1","session_id":"s1","sku":"A1"}')
>>> (ev.type, ev.user_id, ev.sku)
('page_view', 'u1', 'A1')

The JSON Schema of every model is exported under ``schemas/`` (``make schemas``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple, TypeAlias

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

SCHEMA_VERSION = 1
MAX_EVENT_BYTES = 64 * 1024

Id = Annotated[str, Field(min_length=1, max_length=128)]
Text = Annotated[str, Field(max_length=512)]
TsMs = Annotated[int, Field(ge=0, le=4_102_444_800_000, description="event time, epoch ms")]
Money = Annotated[float, Field(ge=0, le=10_000_000)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
Quantity = Annotated[int, Field(ge=1, le=10_000)]
Score = Annotated[float, Field(allow_inf_nan=False)]

PURPOSES = ("personalization", "marketing", "analytics", "feature_storage")
Purpose = Literal["personalization", "marketing", "analytics", "feature_storage"]


class _Event(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    event_id: Id = Field(description="producer-assigned id, unique per event; used for dedup")
    ts: TsMs


# --------------------------------------------------------------------------- inbound


class PageView(_Event):
    type: Literal["page_view"] = "page_view"
    user_id: Id
    session_id: Id
    sku: Id
    referrer: Text | None = None


class Click(_Event):
    type: Literal["click"] = "click"
    user_id: Id
    session_id: Id
    sku: Id
    position: Annotated[int, Field(ge=0, le=10_000)] | None = None
    surface: Annotated[str, Field(max_length=64)] | None = None


class AddToCart(_Event):
    type: Literal["add_to_cart"] = "add_to_cart"
    user_id: Id
    session_id: Id
    sku: Id
    quantity: Quantity = 1
    unit_price: Money | None = None


class OrderLine(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    sku: Id
    quantity: Quantity
    unit_price: Money


class Order(_Event):
    type: Literal["order"] = "order"
    user_id: Id
    session_id: Id | None = None
    order_id: Id
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=200)]
    currency: Currency


class Inventory(_Event):
    type: Literal["inventory"] = "inventory"
    sku: Id
    location: Id
    on_hand: Annotated[int, Field(ge=0, le=100_000_000)]
    reserved: Annotated[int, Field(ge=0, le=100_000_000)] = 0


class Price(_Event):
    type: Literal["price"] = "price"
    sku: Id
    price: Money
    currency: Currency
    list_price: Money | None = None
    unit_cost: Money | None = None


class Consent(_Event):
    type: Literal["consent"] = "consent"
    user_id: Id
    purposes: Annotated[list[Purpose], Field(max_length=len(PURPOSES))] = Field(
        description="purposes granted; a purpose absent here is not granted"
    )


class Option(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    option_id: Id
    label: Text
    price_delta: Annotated[float, Field(ge=-1_000_000, le=1_000_000)] = 0.0
    material_sku: Id | None = Field(None, description="stock item this option consumes")
    attributes: Annotated[dict[str, Text], Field(max_length=16)] = {}


class OptionGroup(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    group_id: Id
    label: Text
    required: bool = True
    options: Annotated[list[Option], Field(min_length=1, max_length=64)]


class CompatibilityRule(BaseModel):
    """``if`` option (group:option) is chosen then ``requires``/``excludes`` apply."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, populate_by_name=True)

    when: Annotated[str, Field(pattern=r"^[^:]+:[^:]+$")]
    requires: Annotated[list[str], Field(max_length=32)] = []
    excludes: Annotated[list[str], Field(max_length=32)] = []


class CatalogItem(_Event):
    type: Literal["catalog"] = "catalog"
    sku: Id
    title: Text
    category_path: Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]],
                             Field(min_length=1, max_length=8)]
    brand: Annotated[str, Field(max_length=128)]
    price: Money
    currency: Currency
    attributes: Annotated[dict[str, Text], Field(max_length=64)] = {}
    option_groups: Annotated[list[OptionGroup], Field(max_length=16)] = []
    compatibility: Annotated[list[CompatibilityRule], Field(max_length=256)] = []
    min_age: Annotated[int, Field(ge=0, le=99)] = 0
    regions: Annotated[list[Annotated[str, Field(max_length=8)]], Field(max_length=64)] = Field(
        default=[], description="regions where the item may be sold; empty = everywhere"
    )
    active: bool = True


ControlAction = Literal[
    "switch_policy", "switch_model", "erase_user", "shadow_policy", "canary_policy",
    "rollback_policy", "review_decision", "override", "dispute_decision",
]


class Control(_Event):
    type: Literal["control"] = "control"
    action: ControlAction
    user_id: Id | None = Field(None, description="for erase_user")
    version: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="policy pack or model version"
    )
    percent: Annotated[float, Field(ge=0, le=100)] | None = Field(None, description="canary share")
    decision_id: Id | None = Field(None, description="review_decision: the held decision")
    verdict: Literal["approve", "reject", "modify"] | None = Field(
        None, description="review_decision: modify = approve with discount_pct")
    discount_pct: Annotated[float, Field(ge=0, le=100)] | None = Field(
        None, description="review_decision (modify): the offer's discount instead")
    reason: Annotated[str, Field(max_length=512)] | None = Field(
        None, description="review_decision, dispute_decision: why, in the operator's words")
    override_id: Id | None = Field(None, description="override: the override's id (a new "
                                   "one with the same id replaces it)")
    mode: Literal["suppress", "pin", "clear"] | None = Field(None, description="override")
    scope: Literal["user", "segment", "all"] | None = Field(None, description="override")
    user_ref: Id | None = Field(None, description="override (scope user): the pseudonym")
    segment: Annotated[str, Field(max_length=128)] | None = Field(
        None, description="override (scope segment): the users' strongest top category")
    skus: Annotated[list[Id], Field(max_length=100)] = Field(
        default=[], description="override: the items; dispute_decision: the disputed ones")
    until_ts: TsMs | None = Field(None, description="override: end of its period (event "
                                                    "time; from ts on)")
    issued_by: Annotated[str, Field(max_length=128)] = "unknown"
    key_id: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="the control key that signed it (policies.control_auth)")
    signature: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = Field(
        None, description="hex HMAC-SHA256 of the canonical event under the key")

    @model_validator(mode="after")
    def _review_fields(self) -> Control:
        if self.action == "review_decision":
            if self.decision_id is None or self.verdict is None:
                raise ValueError("review_decision needs decision_id and verdict")
            if self.verdict == "modify" and self.discount_pct is None:
                raise ValueError("a modify verdict needs discount_pct")
        elif self.action == "override":
            if self.override_id is None or self.mode is None:
                raise ValueError("override needs override_id and mode")
            if self.mode != "clear" and (self.scope is None or not self.skus):
                raise ValueError("a suppress or pin override needs scope and skus")
            if self.scope == "user" and self.user_ref is None:
                raise ValueError("an override of scope user needs user_ref")
            if self.scope == "segment" and self.segment is None:
                raise ValueError("an override of scope segment needs segment")
        elif self.action == "dispute_decision" and (self.decision_id is None
                                                    or not self.skus):
            raise ValueError("dispute_decision needs decision_id and the disputed skus")
        return self


Inbound: TypeAlias = Annotated[
    PageView | Click | AddToCart | Order | Inventory | Price | Consent | CatalogItem | Control,
    Field(discriminator="type"),
]
INBOUND_TYPES: dict[str, type[_Event]] = {
    m.model_fields["type"].default: m
    for m in (PageView, Click, AddToCart, Order, Inventory, Price, Consent, CatalogItem, Control)
}
_inbound = TypeAdapter(Inbound)


def parse_inbound(raw: bytes | str) -> Inbound:
    """Parse one JSON event; raises ``pydantic.ValidationError`` or ``ValueError``."""
    if len(raw) > MAX_EVENT_BYTES:
        raise ValueError(f"event of {len(raw)} bytes exceeds the {MAX_EVENT_BYTES} byte limit")
    return _inbound.validate_json(raw)


def inbound_from_dict(obj: dict[str, Any]) -> Inbound:
    """Validate an already-decoded event (from a dataset loader or Parquet row).

    Python objects are validated in lax mode for numbers read from columnar files.
    """
    return _inbound.validate_python(obj, strict=False)


# --------------------------------------------------------------------------- outbound


class _Out(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    id: Id = Field(description="deterministic id: a replay after recovery repeats it exactly")
    ts: TsMs


class ScoredItem(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    sku: Id
    score: Score
    reason: Annotated[str, Field(max_length=64)] | None = None


class FeedUpdate(_Out):
    type: Literal["feed_update"] = "feed_update"
    user_id: Id
    items: Annotated[list[ScoredItem], Field(max_length=200)]
    trigger_event_id: Id
    model_version: Annotated[str, Field(max_length=64)]
    policy_version: Annotated[str, Field(max_length=64)] | None = None


class Offer(_Out):
    type: Literal["offer"] = "offer"
    user_id: Id
    sku: Id
    discount_pct: Annotated[float, Field(ge=0, le=100)]
    price: Money
    currency: Currency
    expires_ts: TsMs
    channel: Annotated[str, Field(max_length=32)] = "push"
    trigger_event_id: Id


class Configuration(_Out):
    type: Literal["configuration"] = "configuration"
    user_id: Id
    sku: Id
    choices: Annotated[dict[str, Id], Field(max_length=16)] = Field(
        description="option group id -> option id"
    )
    price: Money
    currency: Currency
    trigger_event_id: Id
    ship_date: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None = Field(
        None, description="the ship date the MES promised (with the enterprise adapters)")
    lead_time_days: Annotated[int, Field(ge=0, le=3650)] | None = None


class Verdict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    rule: Id
    rule_version: Annotated[str, Field(max_length=64)]
    effect: Literal["allow", "deny", "modify"]
    subject: Id | None = None
    reason: Text
    inputs: dict[str, str | int | float | bool | None] = {}


class ToolCall(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    tool: Id
    inputs: dict[str, str | int | float | bool | None | list[str]] = {}
    latency_ms: Annotated[float, Field(ge=0)]
    outcome: Literal["ok", "error", "timeout", "breaker_open", "rate_limited", "unauthorized",
                     "replayed", "skipped", "over_budget"]
    breaker_state: Literal["closed", "open", "half_open"] = "closed"
    idempotency_key: Id | None = None
    cost: Annotated[float, Field(ge=0)] | None = Field(
        None, description="what the call cost (tools with a price per call)")
    budget: Annotated[str, Field(max_length=256)] | None = Field(
        None, description="the cost budget limit that refused the call (over_budget)")
    attempts: Annotated[int, Field(ge=2, le=10)] | None = Field(
        None, description="invocations, when the call was retried")
    retry_budget_exhausted: bool | None = Field(
        None, description="a retry was refused by the tool's retry budget")


class Review(BaseModel):
    """What happened to a decision held for review (``policies.review``)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    status: Literal["approved", "rejected", "modified", "timed_out", "pending"] = Field(
        description="pending: a finite input ended before a decision or the deadline")
    reasons: Annotated[list[Text], Field(max_length=16)] = Field(
        description="the review rules that held it")
    requested_ts: TsMs
    resolved_ts: TsMs | None = None
    reviewer: Annotated[str, Field(max_length=128)] | None = None
    reason: Annotated[str, Field(max_length=512)] | None = None
    review_event_id: Id | None = None


class ReviewRequest(_Out):
    """A decision held until a person decides (``review_decision`` control event) or its
    deadline passes (the safe default: not sent)."""

    type: Literal["review_request"] = "review_request"
    decision_id: Id
    decision_type: Literal["offer", "configuration"]
    user_ref: Id = Field(description="pseudonymized user id, never the raw id")
    sku: Id
    proposal: dict[str, str | int | float | bool | None | list[str]] = Field(
        description="what would be sent: discount, price, choices, ship date")
    reasons: Annotated[list[Text], Field(min_length=1, max_length=16)]
    deadline_ts: TsMs
    policy_pack: Annotated[str, Field(max_length=64)]
    policy_version: Annotated[str, Field(max_length=64)]


class DecisionRecord(_Out):
    type: Literal["decision_record"] = "decision_record"
    decision_id: Id
    decision_type: Literal["feed_update", "offer", "configuration"]
    suppressed: bool = False
    user_ref: Id = Field(description="pseudonymized user id (keyed hash), never the raw id")
    trigger_event_id: Id
    goal: Annotated[str, Field(max_length=64)]
    plan: Annotated[str, Field(max_length=64)]
    plan_version: Annotated[str, Field(max_length=32)]
    tool_calls: Annotated[list[ToolCall], Field(max_length=64)] = []
    features: dict[str, str | int | float | bool | None | list[str]] = {}
    model_version: Annotated[str, Field(max_length=64)]
    policy_pack: Annotated[str, Field(max_length=64)] | None = None
    policy_version: Annotated[str, Field(max_length=64)] | None = None
    verdicts: Annotated[list[Verdict], Field(max_length=1024)] = []
    shadow_differences: Annotated[list[Verdict], Field(max_length=1024)] = []
    fallbacks: Annotated[list[Text], Field(max_length=32)] = []
    cost: Annotated[float, Field(ge=0)] | None = Field(
        None, description="what the decision's tool calls cost together (when any had a price)")
    review: Review | None = Field(None, description="held for review: what became of it")
    overrides: Annotated[list[Text], Field(max_length=32)] = Field(
        default=[], description="operator overrides applied, as id@version (policies.overrides)")
    output: dict[str, str | int | float | bool | None | list[str]] = {}
    explanation: Annotated[str, Field(max_length=2048)]


class TrainingExample(_Out):
    """An attributed outcome of a served item (``agent.attribution``): label 1 when the user
    acted on it within its window, 0 when the window closed without; or of an offer
    (``agent.offer_bandit``): 1 when the user ordered it before it expired."""

    type: Literal["training_example"] = "training_example"
    decision_id: Id
    decision_type: Literal["feed_update", "offer"] = "feed_update"
    user_ref: Id = Field(description="pseudonymized user id (keyed hash), never the raw id")
    sku: Id
    position: Annotated[int, Field(ge=0, le=1000)]
    label: Literal[0, 1]
    outcome: Literal["page_view", "click", "add_to_cart", "order", "window_closed",
                     "skipped_above", "superseded", "expired"]
    delay_ms: Annotated[int, Field(ge=0)]
    model_version: Annotated[str, Field(max_length=64)]
    features: Annotated[list[float], Field(max_length=64)] | None = Field(
        None, description="the ranker's features of the item when it was served "
                          "(agent.ranker.FEATURES order): what the learner learns from")
    discount_pct: Annotated[float, Field(ge=0, le=100)] | None = Field(
        None, description="an offer's discount (the offer bandit's arm)")


class ModelChange(_Out):
    """A learned model's new version (``agent.learner``): published to the online store
    (entity ``model``), where the scorers of every worker pick it up, and to this topic."""

    type: Literal["model_change"] = "model_change"
    model: Id = Field(description="the model's name, e.g. feed_ranker")
    version: Annotated[str, Field(max_length=64)]
    examples: Annotated[int, Field(ge=0)] = Field(description="examples learned in all")
    log_loss: Annotated[float, Field(ge=0, le=1000)] | None = Field(
        None, description="mean log-loss of the examples since the previous version, each "
                          "predicted before it was learned (prequential)")
    positives: Annotated[float, Field(ge=0, le=1)] | None = Field(
        None, description="share of positive examples since the previous version")
    weights: dict[Annotated[str, Field(max_length=64)], float] = Field(
        description="the model's weights by feature, and 'intercept' (the offer bandit: "
                    "each arm's Beta posterior, 'arm:<pct>:alpha' and 'arm:<pct>:beta')")
    fallback: Id | None = Field(None, description="the drift alert that keeps this version "
                                "from ranking (the heuristic ranks meanwhile), if any")


class DriftAlert(_Out):
    type: Literal["drift_alert"] = "drift_alert"
    monitor: Id
    subject: Annotated[str, Field(max_length=128)] = Field(description="feature or model name")
    detector: Annotated[str, Field(max_length=64)]
    statistic: Score
    threshold: Score
    action: Literal["none", "fallback", "recovered"] = "none"
    model_version: Annotated[str, Field(max_length=64)] | None = None
    reference: Score | None = Field(None, description="the statistic's level before the "
                                    "drift (what recovery is judged against)")
    window: Annotated[int, Field(ge=0)] | None = Field(None, description="examples the "
                                                       "statistic is computed over")
    examples: Annotated[int, Field(ge=0)] | None = Field(None, description="examples the "
                                                         "model had learned by then")


class DeadLetter(_Out):
    type: Literal["dead_letter"] = "dead_letter"
    source: Annotated[str, Field(max_length=256)] = Field(description="topic or file name")
    partition: Annotated[int, Field(ge=0)]
    offset: Annotated[int, Field(ge=0)]
    original: Annotated[str, Field(max_length=4 * MAX_EVENT_BYTES)] = Field(
        description="original bytes, base64 encoded"
    )
    error: Annotated[str, Field(max_length=4096)]
    step: Annotated[str, Field(max_length=128)]


def to_json_bytes(model: BaseModel) -> bytes:
    """Serialize an event the way Bespoke writes it everywhere (compact JSON)."""
    return model.model_dump_json(exclude_none=True).encode()


class Outgoing(NamedTuple):
    """One serialized outbound event on its way to a sink (a Kafka topic or a file)."""

    channel: str  # "feed_updates", "dead_letters", ... (mapped to topics or file names)
    key: bytes | None  # partitioning key: user id or sku
    value: bytes
    id: str  # the event's deterministic id
    doc: dict[str, Any] | None = None  # the event as a dict, when it was built as one (hot path)


def outgoing(channel: str, key: str | None, model: _Out) -> Outgoing:
    return Outgoing(channel, key.encode() if key is not None else None, to_json_bytes(model),
                    model.id)


# cls -> (defaults, mutable ones)
_DEFAULTS: dict[type, tuple[dict[str, Any], tuple[str, ...]]] = {}
def _dumps(doc: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (orjson: ~10x the standard encoder on decision records)."""
    return orjson.dumps(doc)


def event_doc(cls: type[_Out], **fields: Any) -> dict[str, Any]:
    """An outbound event of ``cls`` as a plain dict: the model's defaults (``type``,
    ``schema_version``...) with ``fields`` over them, *not validated*.

    The decision path builds its events from its own, already validated values, so it
    skips per-event pydantic work; the tests validate every emitted event against the
    contract models instead.

    >>> d = event_doc(Offer, id="o1", ts=1, user_id="u", sku="A", discount_pct=5.0, price=9.5,
    ...               currency="EUR", expires_ts=2, trigger_event_id="e")
    >>> Offer.model_validate_json(outgoing_doc("offers", "u", d).value).channel
    'push'
    """
    hit = _DEFAULTS.get(cls)
    if hit is None:
        d = {n: f.default for n, f in cls.model_fields.items()
             if not f.is_required() and f.default_factory is None}
        hit = _DEFAULTS[cls] = (d, tuple(k for k, v in d.items() if isinstance(v, list | dict)))
    defaults, mutable = hit
    out = defaults.copy()
    for k in mutable:  # a default list or dict is the model's: each event gets its own
        out[k] = defaults[k].copy()
    out.update(fields)
    return out


def outgoing_doc(channel: str, key: str | None, doc: dict[str, Any]) -> Outgoing:
    """``outgoing`` for an event built with ``event_doc`` (``None`` fields are left out)."""
    value = _dumps({k: v for k, v in doc.items() if v is not None} if None in doc.values()
                   else doc)
    return Outgoing(channel, key.encode() if key is not None else None, value, doc["id"], doc)


class LateEvent(_Out):
    """An event older than its entity's watermark minus the allowed lateness."""

    type: Literal["late_event"] = "late_event"
    entity: Literal["user", "item", "session"]
    key: Id
    event_id: Id
    event_ts: TsMs
    watermark: TsMs
    lateness_ms: Annotated[int, Field(ge=0)]
    reason: Text


class FeatureQuality(_Out):
    """Quality of one feature field over the last reporting period (see features.quality)."""

    type: Literal["feature_quality"] = "feature_quality"
    view: Id
    field: Id
    observed: Annotated[int, Field(ge=0)]
    missing: Annotated[int, Field(ge=0)]
    out_of_range: Annotated[int, Field(ge=0)]
    stale: Annotated[int, Field(ge=0)]
    psi: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = Field(
        None, description="population stability index against the reference window")
    reference_size: Annotated[int, Field(ge=0)] = 0


class PolicyChange(_Out):
    """A policy lifecycle change (or a refused one), as applied by the running flow."""

    type: Literal["policy_change"] = "policy_change"
    seq: Annotated[int, Field(ge=1)]
    action: Annotated[str, Field(max_length=32)]
    pack: Annotated[str, Field(max_length=160)] | None = None
    detail: Annotated[str, Field(max_length=2048)]
    issued_by: Annotated[str, Field(max_length=128)]
    ok: bool
    trigger_event_id: Id


class ControlAudit(_Out):
    """The audit record of one control event read from the control topic: accepted (signed
    by a key allowed to take its action, not a replay) or refused, with the reason. An
    erasure names the user by pseudonym only (``user_ref``), never by the raw id."""

    type: Literal["control_audit"] = "control_audit"
    control_event_id: Id
    action: Annotated[str, Field(max_length=32)]
    outcome: Literal["accepted", "refused"]
    reason: Annotated[str, Field(max_length=512)] = ""
    key_id: Annotated[str, Field(max_length=64)] | None = None
    issued_by: Annotated[str, Field(max_length=128)]
    user_ref: Id | None = Field(None, description="erasures: the user's pseudonym")
    version: Annotated[str, Field(max_length=64)] | None = None


OUTBOUND_MODELS: tuple[type[_Out], ...] = (
    FeedUpdate, Offer, Configuration, DecisionRecord, DriftAlert, DeadLetter, LateEvent,
    FeatureQuality, PolicyChange, ControlAudit, TrainingExample, ModelChange, ReviewRequest,
)
ALL_MODELS: tuple[type[BaseModel], ...] = tuple(INBOUND_TYPES.values()) + OUTBOUND_MODELS
