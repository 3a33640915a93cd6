"""Bespoke's feature views, listed explicitly. Change one → bump its version (a test checks).

Run ``make registry`` after a deliberate change to refresh the lock and the exported contract.
"""

from __future__ import annotations

from features.registry import FeatureField as F
from features.registry import FeatureView, Registry

DAY = 86_400

USER_ACTIVITY = FeatureView(
    name="user_activity", entity="user", version=1, owner="personalization",
    description="Counts of views (incl. clicks), cart adds and orders over sliding windows, "
                "at bucket granularity (5 min for 1 h, 1 h for 24 h, 1 day for 7 d).",
    aggregation="count", window="1h,24h,7d", ttl_s=30 * DAY, as_of_field="as_of",
    fields=[F(name=f"{t}_{w}", dtype="int", min=0, max=1_000_000)
            for t in ("views", "carts", "orders") for w in ("1h", "24h", "7d")]
    + [F(name="as_of", dtype="int", min=0)],
)
USER_AFFINITY = FeatureView(
    name="user_affinity", entity="user", version=1, owner="personalization",
    description="Exponentially decayed affinities (views 1, cart adds 3, orders 5) to "
                "categories, brands, price bands and attribute values; top 5 each as "
                "'value:weight' lists.",
    aggregation="decayed_sum", half_life="7d", ttl_s=30 * DAY, as_of_field="as_of",
    fields=[F(name=n, dtype="list[str]") for n in
            ("top_categories", "top_brands", "top_price_bands", "top_attributes")]
    + [F(name="as_of", dtype="int", min=0)],
)
USER_RECENCY = FeatureView(
    name="user_recency", entity="user", version=1, owner="personalization",
    description="Last event time, event count, and the last 10 distinct items interacted "
                "with (most recent first).",
    aggregation="last", ttl_s=30 * DAY, as_of_field="last_ts",
    fields=[F(name="last_ts", dtype="int", min=0), F(name="n_events", dtype="int", min=0),
            F(name="last_items", dtype="list[str]")],
)
USER_CART = FeatureView(
    name="user_cart", entity="user", version=1, owner="personalization",
    description="Items in the cart (added, not yet ordered) and their value.",
    aggregation="state", ttl_s=7 * DAY, as_of_field="as_of",
    fields=[F(name="cart_items", dtype="list[str]"),
            F(name="cart_value", dtype="float", min=0, max=10_000_000),
            F(name="as_of", dtype="int", min=0)],
)
USER_PURCHASES = FeatureView(
    name="user_purchases", entity="user", version=1, owner="personalization",
    description="Purchase history summary: orders, total spent, average order value, last "
                "order time, last 10 purchased items.",
    aggregation="sum", ttl_s=365 * DAY, as_of_field="as_of",
    fields=[F(name="n_orders", dtype="int", min=0),
            F(name="total_spent", dtype="float", min=0),
            F(name="avg_order_value", dtype="float", min=0, max=10_000_000),
            F(name="last_order_ts", dtype="int", min=0),
            F(name="purchased_items", dtype="list[str]"),
            F(name="as_of", dtype="int", min=0)],
)
SESSION_STATE = FeatureView(
    name="session_state", entity="session", version=1, owner="personalization",
    description="The current session: distinct items seen, dwell (first to last event), "
                "cart adds and intent stage (browsing, exploring, considering, purchased). "
                "A session ends after 30 minutes without events.",
    aggregation="state", window="session(30m gap)", ttl_s=2 * DAY, as_of_field="last_ts",
    staleness_s=1800,
    fields=[F(name="user_id", dtype="str"), F(name="items_seen", dtype="int", min=0),
            F(name="dwell_s", dtype="float", min=0, max=7 * DAY),
            F(name="cart_adds", dtype="int", min=0), F(name="intent_stage", dtype="str"),
            F(name="start_ts", dtype="int", min=0), F(name="last_ts", dtype="int", min=0)],
)
ITEM_POPULARITY = FeatureView(
    name="item_popularity", entity="item", version=1, owner="merchandising",
    description="Decayed views, cart adds, orders (half-life 24 h), popularity (1/3/5 "
                "weights), conversion rate (orders/views) and trending (1 h view rate over "
                "24 h view rate; above 1 = rising).",
    aggregation="decayed_sum", half_life="24h", ttl_s=90 * DAY, as_of_field="as_of",
    fields=[F(name="views", dtype="float", min=0), F(name="carts", dtype="float", min=0),
            F(name="orders", dtype="float", min=0), F(name="popularity", dtype="float", min=0),
            F(name="conversion_rate", dtype="float", min=0, max=10),
            F(name="trending", dtype="float", min=0, max=1000),
            F(name="n_events", dtype="int", min=0), F(name="as_of", dtype="int", min=0)],
)
ITEM_STOCK = FeatureView(
    name="item_stock", entity="item", version=1, owner="supply",
    description="Stock from inventory events summed over locations (available = on hand - "
                "reserved) and days of cover at the 7-day decayed order rate.",
    aggregation="last", ttl_s=90 * DAY, as_of_field="stock_ts", staleness_s=2 * DAY,
    fields=[F(name="on_hand", dtype="int", min=0), F(name="reserved", dtype="int", min=0),
            F(name="available", dtype="int", min=-100_000_000),
            F(name="days_of_cover", dtype="float", min=0, max=100_000),
            F(name="stock_ts", dtype="int", min=0)],
)
ITEM_PRICE = FeatureView(
    name="item_price", entity="item", version=1, owner="pricing",
    description="Current price from price events (or the catalog), list price, currency.",
    aggregation="last", ttl_s=90 * DAY, as_of_field="price_ts", staleness_s=30 * DAY,
    fields=[F(name="price", dtype="float", min=0, max=10_000_000),
            F(name="list_price", dtype="float", min=0, max=10_000_000),
            F(name="currency", dtype="str"), F(name="price_ts", dtype="int", min=0)],
)
ITEM_CATALOG = FeatureView(
    name="item_catalog", entity="item", version=2, owner="merchandising",
    description="Catalog facts the decision path needs: category path, brand, catalog price, "
                "minimum age, regions where it may be sold (comma separated; empty = all), "
                "and for configurable products the option groups and compatibility rules "
                "(JSON; empty when not configurable).",
    aggregation="last", ttl_s=365 * DAY, as_of_field="catalog_ts",
    fields=[F(name="category", dtype="str"), F(name="brand", dtype="str"),
            F(name="catalog_price", dtype="float", min=0, max=10_000_000),
            F(name="min_age", dtype="int", min=0, max=99), F(name="regions", dtype="list[str]"),
            F(name="options", dtype="str", description="JSON {groups, compatibility}"),
            F(name="catalog_ts", dtype="int", min=0)],
)
ITEM_COVISITATION = FeatureView(
    name="item_covisitation", entity="item_pair", version=1, owner="personalization",
    description="Items co-visited within a session (30 min): views→views (symmetric) and "
                "views→cart adds/orders, decayed (half-life 7 d), bounded top-10 per item "
                "kept with a space-saving list of 24 candidates.",
    aggregation="top_k", half_life="7d", window="session(30m gap)", ttl_s=90 * DAY,
    as_of_field="as_of",
    fields=[F(name="view_view", dtype="list[str]"), F(name="view_buy", dtype="list[str]"),
            F(name="as_of", dtype="int", min=0)],
)
ITEM_KEYS = FeatureView(
    name="item_keys", entity="item_index", version=1, owner="personalization",
    description="The last 50 distinct keys (users, or sessions in a session dataset) that "
                "viewed, clicked, carted or ordered the item, newest first: session-kNN's "
                "neighbour index (features.session_index).",
    aggregation="last", ttl_s=30 * DAY, as_of_field="as_of",
    fields=[F(name="keys", dtype="list[str]"), F(name="as_of", dtype="int", min=0)],
)
USER_TRAIL = FeatureView(
    name="user_trail", entity="trail", version=1, owner="personalization",
    description="A key's last 10 distinct items (viewed, clicked, carted, ordered), newest "
                "first: what session-kNN compares and recommends from (a fact entity, so "
                "decisions read it as of their event time; purged on erasure).",
    aggregation="last", ttl_s=30 * DAY, as_of_field="as_of",
    fields=[F(name="items", dtype="list[str]"), F(name="as_of", dtype="int", min=0)],
)

CATEGORY_ITEMS = FeatureView(
    name="category_items", entity="category", version=1, owner="merchandising",
    description="Candidate lists per category (full category path): the 20 items trending "
                "now (views decayed with a 1 h half-life, strongest of 48 kept) and the 20 "
                "newest arrivals (first catalog event), as 'sku:weight' and 'sku' lists.",
    aggregation="top_k", half_life="1h", ttl_s=30 * DAY, as_of_field="as_of",
    fields=[F(name="trending", dtype="list[str]"), F(name="new_arrivals", dtype="list[str]"),
            F(name="as_of", dtype="int", min=0)],
)
POPULAR_ITEMS = FeatureView(
    name="popular_items", entity="category", version=1, owner="merchandising",
    description="The 30 most popular items of the whole catalog (row '*': views 1, cart "
                "adds 3, orders 5, decayed with a 7 d half-life, a space-saving list of 256 "
                "kept), as 'sku:weight': the candidate source of keys with no history and "
                "of catalogs without categories.",
    aggregation="top_k", half_life="7d", ttl_s=30 * DAY, as_of_field="as_of",
    fields=[F(name="popular", dtype="list[str]"), F(name="as_of", dtype="int", min=0)],
)

FEED_VIEW = FeatureView(
    name="feed", entity="feed", version=1, owner="personalization",
    description="The feed last sent to a user (written by the decision step, not a feature "
                "fold): 'sku:score' items in order, the decision id, model and policy versions.",
    aggregation="last", ttl_s=7 * DAY,
    fields=[F(name="items", dtype="list[str]"), F(name="id", dtype="str"),
            F(name="model_version", dtype="str"), F(name="policy_version", dtype="str")],
)

MODEL_VIEW = FeatureView(
    name="model", entity="model", version=3, owner="personalization",
    description="A learned model's snapshot (written by the learner step, agent.learner): "
                "under the model's name the newest version, under 'name@version' each one "
                "(for switch_model); weights as JSON by feature; the deep part (hidden "
                "ReLU layer) as JSON, empty for a linear model; the drift alert that keeps "
                "it from ranking, if any.",
    aggregation="last", ttl_s=30 * DAY,
    fields=[F(name="version", dtype="str"), F(name="weights", dtype="str"),
            F(name="examples", dtype="int", min=0), F(name="fallback", dtype="str"),
            F(name="deep", dtype="str")],
)

# folded from the user step's decision inputs: written only by a flow that decides
SESSION_INDEX_VIEWS = (ITEM_KEYS, USER_TRAIL)

# written by the decision step and the learner, not by the feature folds
DECISION_VIEWS = (FEED_VIEW, MODEL_VIEW)

REGISTRY = Registry([USER_ACTIVITY, USER_AFFINITY, USER_RECENCY, USER_CART, USER_PURCHASES,
                     SESSION_STATE, ITEM_POPULARITY, ITEM_STOCK, ITEM_PRICE, ITEM_CATALOG,
                     ITEM_COVISITATION, ITEM_KEYS, USER_TRAIL, CATEGORY_ITEMS, POPULAR_ITEMS,
                     FEED_VIEW, MODEL_VIEW])
