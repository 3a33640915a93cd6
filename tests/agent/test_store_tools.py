"""The agent's store-backed tools over features computed by the real flow."""

import json
import uuid

import pytest

from agent.store_tools import ALL_SCOPES, store_tools
from agent.tools import ToolRuntime
from connectors.generator import GenConfig, Generator, write_jsonl
from connectors.memory_store import MemoryStore
from features.category_features import ALL
from features.definitions import ITEM_COVISITATION, ITEM_STOCK
from features.store import StoreWrite
from flows.main import RunConfig, run
from flows.settings import Settings
from policies.configuration import config_problems


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    d = tmp_path_factory.mktemp("tools")
    recs = list(Generator(GenConfig(seed=12, users=300, items=150, events=8000,
                                    malformed_rate=0.0, configurable_share=0.3)).records())
    write_jsonl(str(d / "e.jsonl"), iter(recs))
    name = uuid.uuid4().hex
    run(RunConfig(inputs=[str(d / "e.jsonl")], output=str(d / "out"), store=f"memory://{name}",
                  decisions=False, settings=Settings(_env_file=None, progress_every_s=0)))
    catalog = {json.loads(r.value)["sku"]: json.loads(r.value) for r in recs
               if r.type == "catalog"}
    return MemoryStore.shared(name), catalog


def test_catalog_inventory_and_quotes(filled):
    store, catalog = filled
    rt = ToolRuntime(store_tools(store))
    skus = sorted(catalog)[:5]
    items = rt.call("catalog_lookup", {"skus": skus}, ALL_SCOPES).output["items"]
    assert {s: items[s]["brand"] for s in skus} == {s: catalog[s]["brand"] for s in skus}
    avail = rt.call("inventory_check", {"skus": skus + ["nope"]}, ALL_SCOPES).output
    assert avail["available"]["nope"] is None and all(
        isinstance(avail["available"][s], int) for s in skus)
    q = rt.call("pricing_quote", {"sku": skus[0], "discount_pct": 10}, ALL_SCOPES)
    assert q.outcome == "ok" and q.output["quoted"] == round(q.output["price"] * 0.9, 2)
    assert rt.call("pricing_quote", {"sku": "nope"}, ALL_SCOPES).outcome == "error"


def test_covisitation_candidates_exclude_the_seed_items(filled):
    store, _ = filled
    rt = ToolRuntime(store_tools(store))
    seeds = [k for k, row in zip(store.keys("item"), store.read_many("item", store.keys("item")),
                                 strict=True)
             if row and row.get(ITEM_COVISITATION.column("view_view"))][:3]
    assert seeds
    out = rt.call("covis_candidates", {"items": seeds, "limit": 20}, ALL_SCOPES).output
    assert out["items"] and not {s for s, _ in out["items"]} & set(seeds)
    assert [w for _, w in out["items"]] == sorted((w for _, w in out["items"]), reverse=True)


def test_configurator_respects_compatibility_affinity_and_material_stock(filled):
    store, catalog = filled
    rt = ToolRuntime(store_tools(store))
    sku = next(s for s, c in sorted(catalog.items()) if c["option_groups"])
    item = catalog[sku]
    groups = {g["group_id"]: [o["option_id"] for o in g["options"]]
              for g in item["option_groups"]}
    mats = {f"{g['group_id']}:{o['option_id']}": o["material_sku"]
            for g in item["option_groups"] for o in g["options"] if o.get("material_sku")}

    r = rt.call("configurator", {"sku": sku, "affinities": "color=red:3.0"}, ALL_SCOPES)
    assert r.outcome == "ok" and r.output["choices"]["color"] == "red"
    assert r.output["choices"]["frame"] != "carbon"  # carbon excludes red
    assert not config_problems(r.output["choices"], groups, item["compatibility"], mats,
                               {"MAT-alu": 1, "MAT-carbon": 1})
    # no aluminium left: the configurator must move to carbon, so red is no longer possible
    store.apply([StoreWrite("item", "MAT-alu", ITEM_STOCK.store_prefix, {"available": 0},
                            10**13, 0)])
    r = rt.call("configurator", {"sku": sku, "affinities": "color=red:3.0"}, ALL_SCOPES)
    assert r.outcome == "ok" and r.output["choices"]["frame"] == "carbon"
    assert r.output["choices"]["color"] != "red" and r.output["choices"]["size"] != "XL"
    assert r.output["price"] > catalog[sku]["price"] - 1e-9  # carbon costs more
    plain = next(s for s, c in sorted(catalog.items()) if not c["option_groups"])
    assert rt.call("configurator", {"sku": plain}, ALL_SCOPES).outcome == "error"


def test_category_candidates_come_from_the_category_views(filled):
    store, catalog = filled
    rt = ToolRuntime(store_tools(store))
    cats = [c for c in store.keys("category") if c != ALL][:2]
    assert cats, "the flow wrote no category rows"
    trending = rt.call("category_trending", {"categories": cats, "limit": 10}, ALL_SCOPES)
    new = rt.call("new_arrivals", {"categories": cats, "limit": 10}, ALL_SCOPES)
    assert trending.outcome == new.outcome == "ok"
    assert trending.output["items"] and new.output["items"]
    in_cats = {s for s, c in catalog.items() if "/".join(c["category_path"]) in cats}
    assert {s for s, _ in trending.output["items"]} <= in_cats
    assert {s for s, _ in new.output["items"]} <= in_cats
    weights = [w for _, w in trending.output["items"]]
    assert weights == sorted(weights, reverse=True) and weights[0] == 1.0  # the top one
    popular = rt.call("popular_items", {"limit": 10}, ALL_SCOPES).output["items"]
    assert len(popular) == 10 and popular[0][1] == 1.0  # scaled to the top one
    assert {s for s, _ in popular} <= set(catalog)


def test_trusted_tools_outputs_meet_their_declared_models(filled):
    """Built-in tools are not re-validated per call: this is where their schemas are held."""
    store, catalog = filled
    rt = ToolRuntime(store_tools(store))
    skus = sorted(catalog)[:4]
    cats = store.keys("category")[:2]
    calls = {"catalog_lookup": {"skus": skus}, "inventory_check": {"skus": skus},
             "pricing_quote": {"sku": skus[0], "discount_pct": 5.0},
             "covis_candidates": {"items": skus, "limit": 5},
             "category_trending": {"categories": cats, "limit": 5},
             "new_arrivals": {"categories": cats, "limit": 5},
             "session_neighbours": {"key": "u1", "limit": 5},  # (tests/agent/test_session_knn)
             "popular_items": {"limit": 5}}
    assert set(calls) | {"configurator"} == set(rt.tools)
    for name, inputs in calls.items():
        spec = rt.tools[name].spec
        assert spec.trusted
        spec.input_model.model_validate(inputs)
        r = rt.call(name, inputs, ALL_SCOPES)
        assert r.outcome == "ok", (name, r.error)
        spec.output_model.model_validate(r.output)


class _CountingStore:
    def __init__(self, store) -> None:
        self.store, self.calls = store, []

    def read_many(self, entity, keys):
        self.calls.append(((entity, len(keys)),))
        return self.store.read_many(entity, keys)

    def read_groups(self, requests):  # one round trip for all
        self.calls.append(tuple((entity, len(keys)) for entity, keys in requests))
        return [self.store.read_many(entity, keys) for entity, keys in requests]


def test_a_warmed_chunk_of_decisions_reads_the_store_once_per_entity(filled):
    """Candidates for a chunk of users: prefetch reads the rows of all their recent items,
    triggers and categories in one store round trip; the tools then read no more."""
    from agent.feed import FEED_PLAN
    from agent.plans import AGENT_SCOPES, run_plan
    from agent.policy_gate import PolicyGate
    from connectors.cached_store import CachedRows
    from connectors.policy_packs import read_pack_files
    from features.user_features import UserFeatures
    from flows.settings import Settings

    store, catalog = filled
    counting = _CountingStore(store)
    gate = PolicyGate(read_pack_files(Settings(_env_file=None).policy_dir), None,
                      lambda: CachedRows(counting, 60, max_keys=200_000))
    items = sorted(catalog)
    cats = store.keys("category")
    feats = [UserFeatures(f"u{i}", f"e{i}", 1, [], (), None, kind="page_view",
                          skus=(items[i],), categories=tuple(cats[i % len(cats):][:2]),
                          recent=tuple(items[i:i + 3])) for i in range(20)]
    gate.prefetch(feats)
    assert [sorted(e for e, _ in call) for call in counting.calls] == [["category", "item"]]
    before = len(counting.calls)
    for f in feats:
        run = run_plan(FEED_PLAN, gate.runtime, AGENT_SCOPES, {"event_id": f.event_id},
                       {"recent": list(f.recent), "categories": list(f.categories),
                        "popular_limit": 30})
        assert run.ok and [c["outcome"] for c in run.calls] == ["ok", "ok", "ok", "ok"]
        gate.configurable(f.skus[0])
    assert len(counting.calls) == before  # all from the warmed cache
    gate.prefetch_facts(items[:50])  # the chunk's candidates: one read for the 28 not cached
    assert counting.calls[before:] == [(("item", 50 - len({s for f in feats for s in f.recent})),)]
    gate.candidates(items[:50])
    assert len(counting.calls) == before + 1


def test_popular_items_are_the_head_of_the_published_list_in_its_order():
    """Asked for N, the tool returns the published list's first N: items further down
    whose weights print the same to 4 decimals do not swap in (a key's exclusions ask for
    more, not for other ones)."""
    from features.category_features import POPULAR_ITEMS

    store = MemoryStore()
    row = {"popular": "z:9.0000,y:5.0000,b:5.0000,a:5.0000,c:1.0000", "as_of": 1}
    store.apply([StoreWrite("category", ALL, POPULAR_ITEMS.store_prefix, row, 1, 3600)])
    rt = ToolRuntime(store_tools(store))
    got = [rt.call("popular_items", {"limit": n}, ALL_SCOPES).output["items"]
           for n in (2, 3, 10)]
    assert [[s for s, _ in g] for g in got] == [["z", "y"], ["z", "b", "y"],
                                                  ["z", "a", "b", "y", "c"]]
    assert got[0][1][1] == round(5 / 9, 6)
