"""Feature definitions as data, and the registry that governs them.

A ``FeatureView`` is a named, versioned group of fields computed for one entity. The
``Registry`` lists views explicitly, refuses duplicates, and — checked against the lock of
released definitions (``features/registry.lock.json``) — refuses a changed definition whose
version was not bumped, or a version that went backwards. ``export()`` is the data contract
published as ``schemas/feature_registry.json`` (``make registry`` refreshes both).

>>> v = FeatureView(name="demo", entity="user", version=1, owner="team", description="d",
...                 aggregation="count", window="1h", ttl_s=60,
...                 fields=[FeatureField(name="n", dtype="int", min=0)])
>>> r = Registry([v])
>>> r.check_against({"demo": {"version": 1, "fingerprint": v.fingerprint()}})
[]
>>> v2 = v.model_copy(update={"window": "24h"})
>>> Registry([v2]).check_against({"demo": {"version": 1, "fingerprint": v.fingerprint()}})
['demo: definition changed but version is still 1 (bump it)']
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Entity = Literal["user", "session", "item", "item_pair", "item_index", "category", "feed", "model",
                 "trail"]
DType = Literal["int", "float", "str", "list[str]"]


class FeatureField(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    dtype: DType
    min: float | None = None
    max: float | None = None
    description: str = ""


class FeatureView(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    entity: Entity
    version: int = Field(ge=1)
    owner: str
    description: str
    aggregation: str = Field(description="count, decayed_sum, last, top_k, ratio, state ...")
    window: str | None = None
    half_life: str | None = None
    ttl_s: int = Field(ge=0, description="online store TTL; 0 = none")
    staleness_s: int | None = Field(
        None, description="a value whose as_of lags the read time by more is stale")
    as_of_field: str | None = Field(None, description="field holding the value's event time")
    fields: list[FeatureField] = Field(min_length=1)

    @property
    def store_prefix(self) -> str:
        """Fields are stored as ``<name>_v<version>.<field>``: the version is in the field."""
        return f"{self.name}_v{self.version}"

    def column(self, field: str) -> str:
        """The store column of one of the view's fields: how readers name it, so a version
        bump reaches every reader.

        >>> FeatureView(name="v", entity="item", version=3, owner="o", description="d",
        ...             aggregation="last", ttl_s=0,
        ...             fields=[FeatureField(name="n", dtype="int")]).column("n")
        'v_v3.n'
        """
        if all(f.name != field for f in self.fields):
            raise KeyError(f"{self.name} has no field {field!r}")
        return f"{self.store_prefix}.{field}"

    def fingerprint(self) -> str:
        """Hash of everything that changes meaning (not owner or description texts)."""
        semantic = self.model_dump(exclude={"owner", "description", "version"})
        for f in semantic["fields"]:
            f.pop("description", None)
        blob = json.dumps(semantic, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class RegistryError(ValueError):
    pass


class Registry:
    def __init__(self, views: list[FeatureView]) -> None:
        self._views: dict[str, FeatureView] = {}
        for v in views:
            if v.name in self._views:
                raise RegistryError(f"duplicate feature view {v.name!r}")
            names = [f.name for f in v.fields]
            if len(set(names)) != len(names):
                raise RegistryError(f"{v.name}: duplicate field names")
            self._views[v.name] = v

    def __getitem__(self, name: str) -> FeatureView:
        return self._views[name]

    def __iter__(self) -> Iterator[FeatureView]:
        return iter(self._views.values())

    def for_entity(self, entity: str) -> list[FeatureView]:
        return [v for v in self._views.values() if v.entity == entity]

    def lock(self) -> dict[str, dict[str, Any]]:
        return {v.name: {"version": v.version, "fingerprint": v.fingerprint()}
                for v in self._views.values()}

    def check_against(self, lock: dict[str, dict[str, Any]]) -> list[str]:
        """Problems with the current definitions relative to released ones."""
        problems = []
        for v in self._views.values():
            old = lock.get(v.name)
            if old is None:
                continue
            if v.version < old["version"]:
                problems.append(f"{v.name}: version went back from {old['version']} to "
                                f"{v.version}")
            elif v.version == old["version"] and v.fingerprint() != old["fingerprint"]:
                problems.append(f"{v.name}: definition changed but version is still "
                                f"{v.version} (bump it)")
        return problems

    def export(self) -> dict[str, Any]:
        return {"registry_format": 1,
                "views": [v.model_dump() | {"fingerprint": v.fingerprint(),
                                            "store_prefix": v.store_prefix}
                          for v in self._views.values()]}
