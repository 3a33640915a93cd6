"""Adapters to the enterprise's own systems (PLM, MES, ERP, pricing) as governed tools.

Each adapter is an HTTP tool under ``agent.tools.ToolRuntime``: it runs in a worker thread
behind a hard timeout, its input and output are validated against the models below on
every call (a malformed answer is a failed call), its retries draw on the tool's retry
budget, its breaker opens on repeated failures, and the side-effecting ERP calls carry an
``Idempotency-Key`` (the runtime's, derived from the decision) so a replay after recovery
reserves nothing twice. The HTTP client pools connections (one ``httpx.Client`` per
process and service). A service's price per call comes back in the ``X-Call-Cost``
header; without it, the tool's declared ``cost_per_call`` is what a call costs.

The contracts (paths, fields) are those of the reference service
``scripts/enterprise_service.py`` and its OpenAPI document; a deployment points
``BESPOKE_ENTERPRISE_URL`` at a gateway that serves them.

=====================  =================  ===============================================
tool                   scope              call
=====================  =================  ===============================================
plm_product_structure  plm:read           GET /plm/v1/products/{sku}
mes_lead_time          mes:read           GET /mes/v1/lead-time?sku&qty&from_day&options
erp_customer           erp:read           GET /erp/v1/customers/{ref}
erp_stock              erp:read           GET /erp/v1/stock/{sku}
erp_reserve_stock      erp:reserve        POST /erp/v1/reservations (side effect)
erp_release            erp:reserve        DELETE /erp/v1/reservations/{id} (side effect)
pricing_engine_quote   pricing:quote      POST /pricing/v1/quotes
=====================  =================  ===============================================
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from agent.tools import Tool, ToolSpec

# httpx logs every request at INFO: thousands of lines a minute, each naming a customer's
# pseudonym; the decision records already hold every call
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

ENTERPRISE_SCOPES = frozenset({"plm:read", "mes:read", "erp:read", "erp:reserve",
                               "pricing:quote"})


class ServiceError(RuntimeError):
    """The service failed (5xx, a refused request): the call failed, it may be retried."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)  # a service may add fields


# ------------------------------------------------------------------------ PLM
class SkuIn(_In):
    sku: str = Field(min_length=1, max_length=128)


class PlmOption(_Answer):
    option_id: str
    label: str = ""
    price_delta: float = 0.0
    material_sku: str | None = None
    attributes: dict[str, str] = {}
    lead_time_days: int = Field(0, ge=0)


class PlmGroup(_Answer):
    group_id: str
    label: str = ""
    required: bool = True
    options: list[PlmOption] = Field(min_length=1)


class PlmRule(_Answer):
    when: str
    requires: list[str] = []
    excludes: list[str] = []


class BomLine(_Answer):
    component_sku: str
    qty: int = Field(ge=1)


class ProductStructure(_Answer):
    sku: str
    revision: str
    configurable: bool
    base_price: float = Field(ge=0)
    option_groups: list[PlmGroup]
    compatibility: list[PlmRule]
    bom: list[BomLine]


# ------------------------------------------------------------------------ MES
class LeadTimeIn(_In):
    sku: str = Field(min_length=1, max_length=128)
    qty: int = Field(1, ge=1, le=10_000)
    from_day: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    options: list[str] = []


class LeadTime(_Answer):
    sku: str
    line: str
    lead_time_days: int = Field(ge=-1)  # -1: no capacity within the service's horizon
    ship_date: str | None
    capacity_left: int = Field(ge=0)


# ------------------------------------------------------------------------ ERP
class CustomerIn(_In):
    ref: str = Field(min_length=1, max_length=128)


class Customer(_Answer):
    ref: str
    segment: str
    credit_limit: float = Field(ge=0)
    credit_used: float = Field(ge=0)
    currency: str


class Stock(_Answer):
    sku: str
    on_hand: int
    reserved: int = Field(ge=0)
    available: int


class ReserveIn(_In):
    sku: str = Field(min_length=1, max_length=128)
    qty: int = Field(ge=1, le=10_000)
    reference: str = Field("", max_length=256)
    expires_at: int | None = None


class Reservation(_Answer):
    reservation_id: str
    sku: str
    qty: int = Field(ge=1)
    status: str
    expires_at: int | None = None


class ReleaseIn(_In):
    reservation_id: str = Field(min_length=1, max_length=128)


class Released(_Answer):
    reservation_id: str
    status: str


# -------------------------------------------------------------------- pricing
class QuoteIn(_In):
    sku: str = Field(min_length=1, max_length=128)
    qty: int = Field(1, ge=1, le=10_000)
    segment: str = "standard"
    options: dict[str, str] = {}
    at: int = Field(0, ge=0, description="event time the quote is for (epoch ms)")


class Quote(_Answer):
    quote_id: str
    sku: str
    qty: int = Field(ge=1)
    unit_price: float = Field(ge=0)
    currency: str
    segment: str
    valid_until: int


class EnterpriseClient:
    """One pooled HTTP client to a service (thread-safe: the tool threads share it)."""

    def __init__(self, base_url: str, timeout_ms: float = 200.0, max_connections: int = 16,
                 transport: httpx.BaseTransport | None = None) -> None:
        t = timeout_ms / 1000
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"), transport=transport,
            timeout=httpx.Timeout(t * 1.5, connect=max(t, 0.05)),  # the runtime's is the hard one
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections // 2),
            headers={"User-Agent": "bespoke-adapter/1"})

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None) -> dict[str, Any]:
        """The answer's JSON object with the call's price as ``_cost`` (when reported);
        ``LookupError`` for a definite "none" (404, 409), ``ServiceError`` otherwise."""
        r = self.http.request(method, path, params=params, json=json, headers=headers)
        if r.status_code in (404, 409):
            raise LookupError(_error_text(r))
        if r.status_code >= 300:
            raise ServiceError(f"{method} {path}: HTTP {r.status_code}: {_error_text(r)}")
        body = r.json()
        if not isinstance(body, dict):
            raise ServiceError(f"{method} {path}: the answer is not a JSON object")
        cost = r.headers.get("X-Call-Cost")
        if cost is not None:
            try:
                body["_cost"] = max(0.0, float(cost))
            except ValueError:
                raise ServiceError(f"{method} {path}: bad X-Call-Cost {cost!r}") from None
        return body

    def close(self) -> None:
        self.http.close()


def _error_text(r: httpx.Response) -> str:
    try:
        return str(r.json().get("error", ""))[:200]
    except ValueError:
        return r.text[:200]


def enterprise_tools(client: EnterpriseClient, timeout_ms: float = 200.0,
                     costs: dict[str, float] | None = None, max_attempts: int = 2,
                     retry_budget: int = 20, breaker_fail_max: int = 5,
                     breaker_reset_s: float = 30.0) -> list[Tool]:
    """The adapters over ``client``; ``costs``: declared price per call per family
    (``plm``, ``mes``, ``erp``, ``pricing``) for services that do not report it."""
    costs = costs or {}

    def spec(name: str, family: str, description: str, scope: str, in_model: type,
             out_model: type, read_only: bool = True) -> ToolSpec:
        return ToolSpec(name=name, description=description, scope=scope, read_only=read_only,
                        input_model=in_model, output_model=out_model, isolation="thread",
                        timeout_ms=timeout_ms, max_attempts=max_attempts,
                        retry_budget=retry_budget, breaker_fail_max=breaker_fail_max,
                        breaker_reset_s=breaker_reset_s,
                        cost_per_call=float(costs.get(family, 0.0)))

    def get(path: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], dict]:
        return lambda x: client.request("GET", path(x))

    def lead_time(x: dict[str, Any]) -> dict[str, Any]:
        params = {"sku": x["sku"], "qty": x["qty"], "from_day": x["from_day"]}
        if x.get("options"):
            params["options"] = ",".join(x["options"])
        return client.request("GET", "/mes/v1/lead-time", params=params)

    def reserve(x: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in x.items() if k != "_idempotency_key"}
        return client.request("POST", "/erp/v1/reservations", json=body,
                              headers={"Idempotency-Key": x["_idempotency_key"]})

    def release(x: dict[str, Any]) -> dict[str, Any]:
        return client.request("DELETE", f"/erp/v1/reservations/{x['reservation_id']}")

    def quote(x: dict[str, Any]) -> dict[str, Any]:
        return client.request("POST", "/pricing/v1/quotes", json=x)

    return [
        Tool(spec("plm_product_structure", "plm", "option groups, compatibility and bill of "
                  "materials of a product (PLM)", "plm:read", SkuIn, ProductStructure),
             get(lambda x: f"/plm/v1/products/{x['sku']}")),
        Tool(spec("mes_lead_time", "mes", "production line, lead time and ship date of an "
                  "order (MES)", "mes:read", LeadTimeIn, LeadTime), lead_time),
        Tool(spec("erp_customer", "erp", "segment and credit of a customer (ERP)", "erp:read",
                  CustomerIn, Customer), get(lambda x: f"/erp/v1/customers/{x['ref']}")),
        Tool(spec("erp_stock", "erp", "units on hand, reserved and available (ERP)",
                  "erp:read", SkuIn, Stock), get(lambda x: f"/erp/v1/stock/{x['sku']}")),
        Tool(spec("erp_reserve_stock", "erp", "reserve stock for an accepted offer (ERP)",
                  "erp:reserve", ReserveIn, Reservation, read_only=False), reserve),
        Tool(spec("erp_release", "erp", "release a reservation (ERP): the compensation of "
                  "erp_reserve_stock", "erp:reserve", ReleaseIn, Released, read_only=False),
             release),
        Tool(spec("pricing_engine_quote", "pricing", "a unit price for a customer segment "
                  "with its validity (pricing engine)", "pricing:quote", QuoteIn, Quote),
             quote),
    ]
