"""Policy packs: versioned, declarative TOML files validated by pydantic.

A pack is a list of rules; each rule has an ``id``, a ``type`` (one of ``RULE_TYPES``), a
``priority``, the ``actions`` it governs and type-specific ``params``. ``load_pack(text,
source)`` parses and validates a pack and reports problems as ``PackError`` with the file,
line and rule they concern; nothing here reads files (callers pass the text).

>>> pack = load_pack('''
... pack = "demo"
... version = "1"
... [[rules]]
... id = "stock"
... type = "stock"
... [rules.params]
... min_available = 1
... ''', "demo.toml")
>>> pack.pack, pack.version, pack.rules[0].type
('demo', '1', 'stock')
>>> try:
...     load_pack('pack = "x"\\nversion = "1"\\n[[rules]]\\nid = "r"\\ntype = "magic"', "x.toml")
... except PackError as e:
...     print(str(e)[:45])
x.toml:3: rule 'r': unknown rule type 'magic'
"""

from __future__ import annotations

import re
import tomllib
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Action = Literal["recommend", "offer", "configure"]
ACTIONS: tuple[Action, ...] = ("recommend", "offer", "configure")


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConsentParams(_Params):
    purpose: Literal["personalization", "marketing", "analytics", "feature_storage"]
    on_missing: Literal["non_personalized", "suppress"] = "non_personalized"


class StockParams(_Params):
    min_available: int = Field(1, ge=0)
    on_unknown: Literal["deny", "allow"] = Field(
        "deny", description="an item whose stock is unknown (no inventory event yet)")


class PriceParams(_Params):
    categories: list[str] = Field(default=[], description="category prefixes; empty = all")
    max_price: float | None = Field(None, ge=0)
    min_price: float | None = Field(None, ge=0)
    max_discount_pct: float | None = Field(None, ge=0, le=100)
    min_margin_pct: float | None = Field(None, ge=-100, le=100)
    on_unknown: Literal["deny", "allow"] = Field(
        "deny", description="an item whose price is unknown, under a price limit")


class FrequencyCapParams(_Params):
    channel: str
    max_count: int = Field(ge=0)
    window_s: int = Field(gt=0)


class ExposureParams(_Params):
    max_brand_share: float | None = Field(None, gt=0, le=1)
    min_categories: int | None = Field(None, ge=1)


class ComplianceParams(_Params):
    blocked_categories: list[str] = []
    enforce_min_age: bool = False
    enforce_regions: bool = False


class ConfigurationParams(_Params):
    require_material_stock: bool = True
    require_all_required_groups: bool = True


class PurchasedParams(_Params):
    """Items the user bought (those the user's features remember) are not recommended
    again, in the given category prefixes (empty: every category; leave out consumables
    that are bought again and again)."""

    categories: list[str] = Field(default=[], description="category prefixes; empty = all")


class ReviewParams(_Params):
    """A person decides before the action goes out (``policies.review``): an offer or a
    configuration matching any condition is held and sent to ``review_requests``; a
    ``review_decision`` control event releases it, or ``timeout_s`` of event time passes and
    the safe default (not sending) applies."""

    min_discount_pct: float | None = Field(None, ge=0, le=100, description="an offer's "
                                           "discount at or above this")
    min_price: float | None = Field(None, ge=0, description="a price at or above this")
    min_lead_time_days: int | None = Field(None, ge=0, description="a configuration "
                                           "promising a lead time at or above this")
    first_order_only: bool = Field(False, description="only users who never ordered")
    timeout_s: int = Field(3600, gt=0, le=30 * 86400)


PARAMS: dict[str, type[_Params]] = {
    "consent": ConsentParams, "stock": StockParams, "price": PriceParams,
    "frequency_cap": FrequencyCapParams, "exposure": ExposureParams,
    "compliance": ComplianceParams, "configuration": ConfigurationParams,
    "review": ReviewParams, "purchased": PurchasedParams,
}
RULE_TYPES = tuple(PARAMS)


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)]
    type: str
    priority: int = Field(0, ge=-1000, le=1000)
    actions: list[Action] = list(ACTIONS)
    description: str = ""
    params: _Params


class CostBudgets(BaseModel):
    """What tool calls may cost (``agent.cost_budget``), in the tools' price unit; a limit
    left out is no limit. Periods are windows of event time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_decision: float | None = Field(None, ge=0)
    per_user: float | None = Field(None, ge=0)
    per_user_period_s: int = Field(86_400, gt=0)
    per_period: float | None = Field(None, ge=0)
    period_s: int = Field(60, gt=0)


class PolicyPack(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pack: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)]
    version: Annotated[str, Field(min_length=1, max_length=64)]
    description: str = ""
    rules: list[Rule] = Field(min_length=1, max_length=1000)
    budgets: CostBudgets = CostBudgets()

    @property
    def ref(self) -> str:
        return f"{self.pack}@{self.version}"


class PackError(ValueError):
    """A pack that must not be activated; the message names file, line and rule."""


def _rule_lines(text: str) -> list[int]:
    return [i + 1 for i, line in enumerate(text.splitlines())
            if re.match(r"^\s*\[\[\s*rules\s*\]\]\s*$", line)]


def load_pack(text: str, source: str = "<pack>") -> PolicyPack:
    """Parse and validate a TOML pack; raise ``PackError`` with file:line: rule: problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise PackError(f"{source}:{m.group(1) if m else '?'}: invalid TOML: {e}") from e
    lines = _rule_lines(text)
    rules_raw = raw.get("rules")
    if not isinstance(rules_raw, list):
        raise PackError(f"{source}:1: a pack needs at least one [[rules]] table")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, r in enumerate(rules_raw):
        line = lines[i] if i < len(lines) else "?"
        rid = r.get("id", f"#{i + 1}") if isinstance(r, dict) else f"#{i + 1}"
        where = f"{source}:{line}: rule {rid!r}"
        if not isinstance(r, dict):
            raise PackError(f"{where}: not a table")
        rtype = r.get("type")
        if rtype not in PARAMS:
            raise PackError(f"{where}: unknown rule type {rtype!r} (known: "
                            f"{', '.join(RULE_TYPES)})")
        if rid in seen:
            raise PackError(f"{where}: duplicate rule id (first at line {seen[rid]})")
        seen[rid] = line  # type: ignore[assignment]
        try:
            params = PARAMS[rtype].model_validate(r.get("params", {}))
            rules.append(Rule.model_validate({**r, "params": params}))
        except ValidationError as e:
            first = e.errors(include_url=False)[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise PackError(f"{where}: {loc}: {first['msg']}") from e
    try:
        return PolicyPack.model_validate({**raw, "rules": rules})
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise PackError(f"{source}:1: {loc}: {first['msg']}") from e
