"""A reference enterprise service: PLM, MES, ERP and pricing APIs on one loopback port.

Stands in for the systems a deployment owns, so Bespoke's adapters
(``connectors.enterprise``) are tested against a real HTTP server, never a mock:

    python -m scripts.enterprise_service --port 8700 --seed 42 --items 1000

- **PLM** ``GET /plm/v1/products/{sku}``: option groups, compatibility rules and bill of
  materials of a configurable product (the generator's catalog of the same seed and size);
- **MES** ``GET /mes/v1/lead-time``: the production line, lead time and ship date of an
  order, from the line's capacity per day; ``PUT /mes/v1/capacity/{line}/{day}`` changes it;
- **ERP** ``GET /erp/v1/customers/{ref}`` (segment, credit), ``GET /erp/v1/stock/{sku}``,
  ``POST /erp/v1/reservations`` (needs an ``Idempotency-Key``: the same key gives the same
  reservation, never a second one) and ``DELETE /erp/v1/reservations/{id}`` (release);
- **pricing** ``POST /pricing/v1/quotes``: a unit price for a segment with its validity.

Every answer of those four APIs carries its price in the ``X-Call-Cost`` header.
``PUT /admin/faults`` switches, per API family (``plm``, ``mes``, ``erp``, ``pricing`` or
``*``): added latency, error rate (503), malformed answers and the price per call;
``GET /admin/stats`` counts calls and reservations. The contract is the OpenAPI document
served at ``/openapi.json`` (``OPENAPI``). Data lives in an in-memory SQLite database:
a restart starts from the seed again.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import sqlite3
import threading
import zlib
from datetime import date, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FAMILIES = ("plm", "mes", "erp", "pricing")
LINES = ("L1", "L2", "L3")
SEGMENTS = {"standard": 1.0, "gold": 0.95, "b2b": 0.9}
EXTRA_DAYS = {"carbon": 5}  # options made to order take longer
_OBJ = {"type": "object"}


def _op(summary: str, params: list[str] | None = None, body: bool = False,
        codes: tuple[str, ...] = ("200",)) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {
        c: {"description": c, "headers": {"X-Call-Cost": {"schema": {"type": "number"}}},
            "content": {"application/json": {"schema": _OBJ}}} for c in codes}}
    if params:
        op["parameters"] = [{"name": p.split(":")[0], "in": p.split(":")[1],
                             "required": p.split(":")[1] == "path" or p.endswith("!"),
                             "schema": {"type": "string"}} for p in params]
    if body:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": _OBJ}}}
    return op


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Bespoke reference enterprise service", "version": "1.0.0"},
    "paths": {
        "/plm/v1/products/{sku}": {"get": _op("product structure, compatibility and bill of "
                                              "materials", ["sku:path"], codes=("200", "404"))},
        "/mes/v1/lead-time": {"get": _op("line, lead time and ship date of an order",
                                         ["sku:query", "qty:query", "from_day:query",
                                          "options:query"], codes=("200", "404"))},
        "/mes/v1/capacity/{line}/{day}": {"put": _op("set a line's capacity on a day",
                                                     ["line:path", "day:path"], body=True)},
        "/erp/v1/customers/{ref}": {"get": _op("segment and credit of a customer",
                                               ["ref:path"])},
        "/erp/v1/stock/{sku}": {"get": _op("units on hand, reserved and available",
                                           ["sku:path"], codes=("200", "404"))},
        "/erp/v1/reservations": {"post": _op("reserve stock (Idempotency-Key header)",
                                             ["Idempotency-Key:header"], body=True,
                                             codes=("201", "200", "400", "409", "422"))},
        "/erp/v1/reservations/{rid}": {"delete": _op("release a reservation", ["rid:path"],
                                                     codes=("200", "404"))},
        "/pricing/v1/quotes": {"post": _op("a unit price with its validity", body=True,
                                           codes=("200", "404"))},
        "/admin/faults": {"get": _op("fault and price switches"),
                          "put": _op("set fault and price switches", body=True)},
        "/admin/stats": {"get": _op("calls and reservations counted")},
        "/health": {"get": _op("liveness")},
        "/openapi.json": {"get": _op("this document")},
    },
}


class _Fault:
    __slots__ = ("error_rate", "latency_ms", "malformed_rate", "price", "rng")

    def __init__(self, seed: int, family: str) -> None:
        self.latency_ms, self.error_rate, self.malformed_rate, self.price = 0.0, 0.0, 0.0, 0.0
        self.rng = random.Random(f"{seed}:{family}")

    def doc(self) -> dict[str, float]:
        return {"latency_ms": self.latency_ms, "error_rate": self.error_rate,
                "malformed_rate": self.malformed_rate, "price": self.price}


class Enterprise:
    """The service's data (SQLite) and switches."""

    def __init__(self, seed: int = 42, items: int = 1000, capacity: int = 20) -> None:
        from connectors.generator import GenConfig, Generator

        self.seed, self.capacity = seed, capacity
        self.lock = threading.Lock()
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.executescript("""
            CREATE TABLE product (sku TEXT PRIMARY KEY, price REAL, groups TEXT, compat TEXT);
            CREATE TABLE stock (sku TEXT PRIMARY KEY, on_hand INTEGER, reserved INTEGER);
            CREATE TABLE capacity (line TEXT, day TEXT, units INTEGER, PRIMARY KEY (line, day));
            CREATE TABLE reservation (rid TEXT PRIMARY KEY, idem TEXT UNIQUE, request TEXT,
                                      sku TEXT, qty INTEGER, status TEXT, body TEXT);
        """)
        for rec in Generator(GenConfig(seed=seed, items=items, events=1)).catalog():
            ev = json.loads(rec.value)
            if ev["type"] == "catalog":
                self.db.execute("INSERT INTO product VALUES (?, ?, ?, ?)",
                                (ev["sku"], ev["price"], json.dumps(ev["option_groups"]),
                                 json.dumps(ev["compatibility"])))
            else:
                self.db.execute("INSERT OR REPLACE INTO stock VALUES (?, ?, 0)",
                                (ev["sku"], ev["on_hand"]))
        self.faults = {f: _Fault(seed, f) for f in FAMILIES}
        self.calls = dict.fromkeys(FAMILIES, 0)
        self.replays = 0

    # ------------------------------------------------------------------ PLM
    def product(self, sku: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT price, groups, compat FROM product WHERE sku = ?",
                              (sku,)).fetchone()
        if row is None:
            return None
        groups = json.loads(row[1])
        for g in groups:
            for o in g["options"]:
                o["lead_time_days"] = EXTRA_DAYS.get(o["option_id"], 0)
        bom = [{"component_sku": sku + "-BASE", "qty": 1}] + sorted(
            ({"component_sku": o["material_sku"], "qty": 1} for g in groups for o in g["options"]
             if o.get("material_sku")), key=lambda c: c["component_sku"])
        return {"sku": sku, "revision": "A", "configurable": bool(groups),
                "base_price": row[0], "option_groups": groups,
                "compatibility": json.loads(row[2]), "bom": bom}

    # ------------------------------------------------------------------ MES
    def line_of(self, sku: str) -> str:
        return LINES[zlib.crc32(sku.encode()) % len(LINES)]

    def units(self, line: str, day: str) -> int:
        row = self.db.execute("SELECT units FROM capacity WHERE line = ? AND day = ?",
                              (line, day)).fetchone()
        return self.capacity if row is None else row[0]

    def lead_time(self, sku: str, qty: int, from_day: date, options: list[str]
                  ) -> dict[str, Any] | None:
        if self.db.execute("SELECT 1 FROM product WHERE sku = ?", (sku,)).fetchone() is None:
            return None
        line = self.line_of(sku)
        base = 2 + max((EXTRA_DAYS.get(o.split(":")[-1], 0) for o in options), default=0)
        for extra in range(0, 120):
            day = from_day + timedelta(days=base + extra)
            left = self.units(line, day.isoformat())
            if left >= qty:
                return {"sku": sku, "line": line, "lead_time_days": base + extra,
                        "ship_date": day.isoformat(), "capacity_left": left}
        return {"sku": sku, "line": line, "lead_time_days": -1, "ship_date": None,
                "capacity_left": 0}

    # ------------------------------------------------------------------ ERP
    def customer(self, ref: str) -> dict[str, Any]:
        h = int(hashlib.sha256(f"{self.seed}:{ref}".encode()).hexdigest()[:8], 16)
        limit = float(1000 * (1 + h % 10))
        return {"ref": ref, "segment": list(SEGMENTS)[h % len(SEGMENTS)],
                "credit_limit": limit, "credit_used": float(h % int(limit)), "currency": "EUR"}

    def stock(self, sku: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT on_hand, reserved FROM stock WHERE sku = ?",
                              (sku,)).fetchone()
        if row is None:
            return None
        return {"sku": sku, "on_hand": row[0], "reserved": row[1], "available": row[0] - row[1]}

    def reserve(self, idem: str, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = json.dumps(req, sort_keys=True)
        seen = self.db.execute("SELECT request, body FROM reservation WHERE idem = ?",
                               (idem,)).fetchone()
        if seen is not None:
            if seen[0] != request:
                return 422, {"error": "idempotency key reused with a different request"}
            self.replays += 1
            return 200, json.loads(seen[1])
        st = self.stock(req["sku"])
        if st is None or st["available"] < req["qty"]:
            return 409, {"error": f"not enough stock of {req['sku']}"}
        rid = "R-" + hashlib.sha256(idem.encode()).hexdigest()[:16]
        body = {"reservation_id": rid, "sku": req["sku"], "qty": req["qty"], "status": "held",
                "reference": req.get("reference", ""), "expires_at": req.get("expires_at")}
        self.db.execute("INSERT INTO reservation VALUES (?, ?, ?, ?, ?, 'held', ?)",
                        (rid, idem, request, req["sku"], req["qty"], json.dumps(body)))
        self.db.execute("UPDATE stock SET reserved = reserved + ? WHERE sku = ?",
                        (req["qty"], req["sku"]))
        return 201, body

    def release(self, rid: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT sku, qty, status FROM reservation WHERE rid = ?",
                              (rid,)).fetchone()
        if row is None:
            return None
        if row[2] == "held":
            self.db.execute("UPDATE reservation SET status = 'released' WHERE rid = ?", (rid,))
            self.db.execute("UPDATE stock SET reserved = reserved - ? WHERE sku = ?",
                            (row[1], row[0]))
        return {"reservation_id": rid, "status": "released"}

    # -------------------------------------------------------------- pricing
    def quote(self, req: dict[str, Any]) -> dict[str, Any] | None:
        p = self.product(str(req.get("sku", "")))
        if p is None:
            return None
        chosen = req.get("options") or {}
        delta = sum(o.get("price_delta", 0.0) for g in p["option_groups"] for o in g["options"]
                    if chosen.get(g["group_id"]) == o["option_id"])
        factor = SEGMENTS.get(req.get("segment") or "standard", 1.0)
        at = int(req.get("at", 0))
        qid = "Q-" + hashlib.sha256(json.dumps(req, sort_keys=True).encode()).hexdigest()[:16]
        return {"quote_id": qid, "sku": p["sku"], "qty": int(req.get("qty", 1)),
                "unit_price": round((p["base_price"] + delta) * factor, 2), "currency": "EUR",
                "segment": req.get("segment") or "standard", "valid_until": at + 900_000}

    def stats(self) -> dict[str, Any]:
        held = self.db.execute("SELECT status, COUNT(*) FROM reservation GROUP BY status")
        return {"calls": dict(self.calls), "reservations": dict(held.fetchall()),
                "idempotent_replays": self.replays}


def _malformed(body: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A broken answer: a field missing or of the wrong type."""
    bad = dict(body)
    key = sorted(bad)[rng.randrange(len(bad))] if bad else "x"
    if rng.random() < 0.5:
        bad.pop(key, None)
    else:
        bad[key] = {"unexpected": [1, 2]}
    return bad


def build_app(ent: Enterprise) -> Starlette:
    """The ASGI app over ``ent``."""

    async def answer(family: str, fn, *args: Any) -> Response:
        f = ent.faults[family]
        ent.calls[family] += 1
        headers = {"X-Call-Cost": repr(f.price)}
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000)
        if f.error_rate and f.rng.random() < f.error_rate:
            return JSONResponse({"error": "service unavailable"}, 503, headers)
        with ent.lock:
            status, body = fn(*args)
        if status < 300 and f.malformed_rate and f.rng.random() < f.malformed_rate:
            body = _malformed(body, f.rng)
        return JSONResponse(body, status, headers)

    def found(body: dict[str, Any] | None, what: str) -> tuple[int, dict[str, Any]]:
        return (200, body) if body is not None else (404, {"error": f"unknown {what}"})

    async def plm_product(req: Request) -> Response:
        sku = req.path_params["sku"]
        return await answer("plm", lambda: found(ent.product(sku), "product"))

    async def mes_lead_time(req: Request) -> Response:
        q = req.query_params
        try:
            qty = int(q.get("qty", "1"))
            day = date.fromisoformat(q["from_day"])
        except (KeyError, ValueError):
            return JSONResponse({"error": "qty (int) and from_day (YYYY-MM-DD) needed"}, 400)
        opts = [o for o in q.get("options", "").split(",") if o]
        return await answer("mes", lambda: found(
            ent.lead_time(q.get("sku", ""), qty, day, opts), "product"))

    async def mes_capacity(req: Request) -> Response:
        line, day = req.path_params["line"], req.path_params["day"]
        units = int((await req.json())["units"])
        with ent.lock:
            ent.db.execute("INSERT OR REPLACE INTO capacity VALUES (?, ?, ?)", (line, day, units))
        return JSONResponse({"line": line, "day": day, "units": units})

    async def erp_customer(req: Request) -> Response:
        ref = req.path_params["ref"]
        return await answer("erp", lambda: (200, ent.customer(ref)))

    async def erp_stock(req: Request) -> Response:
        sku = req.path_params["sku"]
        return await answer("erp", lambda: found(ent.stock(sku), "sku"))

    async def erp_reserve(req: Request) -> Response:
        idem = req.headers.get("Idempotency-Key")
        try:
            body = await req.json()
            request = {"sku": str(body["sku"]), "qty": int(body["qty"]),
                       "reference": str(body.get("reference", "")),
                       "expires_at": body.get("expires_at")}
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "sku and qty needed"}, 400)
        if not idem:
            return JSONResponse({"error": "an Idempotency-Key header is needed"}, 400)
        return await answer("erp", ent.reserve, idem, request)

    async def erp_release(req: Request) -> Response:
        rid = req.path_params["rid"]
        return await answer("erp", lambda: found(ent.release(rid), "reservation"))

    async def pricing_quote(req: Request) -> Response:
        try:
            body = await req.json()
        except ValueError:
            return JSONResponse({"error": "a JSON body is needed"}, 400)
        return await answer("pricing", lambda: found(ent.quote(body), "product"))

    async def faults(req: Request) -> Response:
        if req.method == "PUT":
            body = await req.json()
            targets = FAMILIES if body.get("family", "*") == "*" else (body["family"],)
            for fam in targets:
                for k in ("latency_ms", "error_rate", "malformed_rate", "price"):
                    if k in body:
                        setattr(ent.faults[fam], k, float(body[k]))
        return JSONResponse({f: x.doc() for f, x in ent.faults.items()})

    async def stats(req: Request) -> Response:
        with ent.lock:
            return JSONResponse(ent.stats())

    async def health(req: Request) -> Response:
        return JSONResponse({"ok": True})

    async def openapi(req: Request) -> Response:
        return JSONResponse(OPENAPI)

    return Starlette(routes=[
        Route("/plm/v1/products/{sku}", plm_product),
        Route("/mes/v1/lead-time", mes_lead_time),
        Route("/mes/v1/capacity/{line}/{day}", mes_capacity, methods=["PUT"]),
        Route("/erp/v1/customers/{ref}", erp_customer),
        Route("/erp/v1/stock/{sku}", erp_stock),
        Route("/erp/v1/reservations", erp_reserve, methods=["POST"]),
        Route("/erp/v1/reservations/{rid}", erp_release, methods=["DELETE"]),
        Route("/pricing/v1/quotes", pricing_quote, methods=["POST"]),
        Route("/admin/faults", faults, methods=["GET", "PUT"]),
        Route("/admin/stats", stats),
        Route("/health", health),
        Route("/openapi.json", openapi),
    ])


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8700)
    p.add_argument("--seed", type=int, default=42, help="the generator's seed (its catalog)")
    p.add_argument("--items", type=int, default=1000,
                   help="the generator's catalog size (the demo's)")
    p.add_argument("--capacity", type=int, default=20, help="units per line and day")
    a = p.parse_args(argv)
    app = build_app(Enterprise(a.seed, a.items, a.capacity))
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
