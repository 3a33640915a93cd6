//! Item features: `features/item_features.py`'s `ItemFold`, natively.

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use serde::{Deserialize, Serialize};

use crate::batch::{Facts, Hint, ItemIn, Side};
use crate::kernels::decay::{round_n, DecayedMap};
use crate::py::named;
use crate::shard::NativeFold;
use crate::shard_class;

const H: i64 = 3_600_000;
const POP_HL: i64 = 24 * H;
const TREND_HL: i64 = H;
const COVER_HL: i64 = 7 * 24 * H;

// dirty views, bit order = sorted view names
const ITEM_CATALOG: u8 = 1;
const ITEM_POPULARITY: u8 = 2;
const ITEM_PRICE: u8 = 4;
const ITEM_STOCK: u8 = 8;

#[derive(Clone, Serialize, Deserialize)]
pub struct Catalog {
    facts: Arc<Facts>, // category, brand, price band, attributes: what hints carry
    price: f64,
    currency: String,
    min_age: i64,
    regions: String,
    ts: i64,
    options: String,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct ItemState {
    catalog: Option<Catalog>,
    pop: DecayedMap,
    trend: DecayedMap,
    cover: DecayedMap,
    stock: HashMap<String, (i64, i64, i64)>,
    price: Option<(f64, f64, String, i64)>,
    n_events: i64,
    last_ts: i64,
    stock_as_of: i64,
    dirty: u8,
}

/// `features.interactions.price_band`.
pub fn price_band(price: f64) -> &'static str {
    for (limit, name) in [(10.0, "<10"), (25.0, "10-25"), (50.0, "25-50"), (100.0, "50-100"),
                          (250.0, "100-250")] {
        if price < limit {
            return name;
        }
    }
    "250+"
}

pub struct ItemFold {
    lateness: i64,
    meta: Vec<(String, i64)>, // (store prefix, ttl) of catalog, popularity, price, stock
    store_write: Py<PyAny>,
    late_event: Py<PyAny>,
    category_input: Py<PyAny>,
}

impl ItemFold {
    fn write(&self, py: Python<'_>, sku: &str, view: usize, row: Bound<'_, PyDict>, ts: i64)
             -> PyResult<Py<PyAny>> {
        let (prefix, ttl) = &self.meta[view];
        Ok(named(py, &self.store_write, (intern!(py, "item"), sku, prefix.as_str(), row, ts, *ttl))?.unbind())
    }

    fn popularity_row<'py>(&self, py: Python<'py>, s: &ItemState, as_of: i64)
                           -> PyResult<Bound<'py, PyDict>> {
        let v = s.pop.value("v", as_of);
        let c = s.pop.value("c", as_of);
        let o = s.pop.value("o", as_of);
        let long_rate = v / POP_HL as f64;
        let short_rate = s.trend.value("v", as_of) / TREND_HL as f64;
        let row = PyDict::new(py);
        row.set_item(intern!(py, "views"), round_n(v, 6))?;
        row.set_item(intern!(py, "carts"), round_n(c, 6))?;
        row.set_item(intern!(py, "orders"), round_n(o, 6))?;
        row.set_item(intern!(py, "popularity"), round_n(v + 3.0 * c + 5.0 * o, 6))?;
        row.set_item(intern!(py, "conversion_rate"),
                     round_n(if v > 0.0 { (o / v).min(10.0) } else { 0.0 }, 6))?;
        row.set_item(intern!(py, "trending"), round_n(if long_rate > 0.0 { (short_rate / long_rate).min(1000.0) }
                                         else { 0.0 }, 6))?;
        row.set_item(intern!(py, "n_events"), s.n_events)?;
        row.set_item(intern!(py, "as_of"), as_of)?;
        Ok(row)
    }

    fn stock_row<'py>(&self, py: Python<'py>, s: &ItemState, as_of: i64)
                      -> PyResult<Bound<'py, PyDict>> {
        let on_hand: i64 = s.stock.values().map(|v| v.0).sum();
        let reserved: i64 = s.stock.values().map(|v| v.1).sum();
        let available = on_hand - reserved;
        let per_day = s.cover.value("o", as_of) * std::f64::consts::LN_2
            / (COVER_HL as f64 / 86_400_000.0);
        let cover = if per_day <= 1e-9 { 100_000.0 } else {
            (available.max(0) as f64 / per_day).min(100_000.0)
        };
        let row = PyDict::new(py);
        row.set_item(intern!(py, "on_hand"), on_hand)?;
        row.set_item(intern!(py, "reserved"), reserved)?;
        row.set_item(intern!(py, "available"), available)?;
        row.set_item(intern!(py, "days_of_cover"), round_n(cover, 4))?;
        row.set_item(intern!(py, "stock_ts"), s.stock.values().map(|v| v.2).max().unwrap_or(0))?;
        Ok(row)
    }

    fn category_input(&self, py: Python<'_>, category: &str, kind: &str, ts: i64, sku: &str,
                      value: f64) -> PyResult<Py<PyAny>> {
        Ok(named(py, &self.category_input, (category, kind, ts, sku, value))?.unbind())
    }
}

impl NativeFold for ItemFold {
    type State = ItemState;

    fn touch(&self, s: &mut ItemState) -> bool {
        if s.catalog.is_some() {
            s.dirty |= ITEM_CATALOG;
        }
        if s.price.is_some() {
            s.dirty |= ITEM_PRICE;
        }
        if !s.stock.is_empty() || s.stock_as_of > 0 {
            s.dirty |= ITEM_STOCK;
        }
        if s.n_events > 0 {
            s.dirty |= ITEM_POPULARITY;
        }
        s.dirty != 0
    }

    fn new_state(&self) -> ItemState {
        ItemState {
            catalog: None, pop: DecayedMap::new(POP_HL as f64),
            trend: DecayedMap::new(TREND_HL as f64), cover: DecayedMap::new(COVER_HL as f64),
            stock: HashMap::default(), price: None, n_events: 0, last_ts: 0, stock_as_of: 0, dirty: 0,
        }
    }

    fn apply(&self, py: Python<'_>, s: &mut ItemState, x: &Bound<'_, PyTuple>,
             out: &Bound<'_, PyList>, side: &mut Side) -> PyResult<()> {
        self.apply_item(py, s, &ItemIn::from_tuple(x)?, out, side)
    }

    fn apply_item(&self, py: Python<'_>, s: &mut ItemState, x: &ItemIn, out: &Bound<'_, PyList>,
                  side: &mut Side) -> PyResult<()> {
        let sku = x.sku();
        let (kind, ts, user, event_id, qty, unit_price) = match x {
            ItemIn::Catalog { ts, category, brand, price, currency, attrs, min_age, regions,
                              options, .. } => {
                let (ts, price) = (*ts, *price);
                if let Some(c) = &s.catalog {
                    if c.ts > ts {
                        return Ok(()); // an older catalog version: the newer one stays
                    }
                }
                if !category.is_empty()
                    && s.catalog.as_ref().is_none_or(|c| c.facts.category != *category) {
                    out.append(self.category_input(py, category, "new", ts, sku, 0.0)?)?;
                }
                let facts = Facts::new(category.clone(), brand.clone(),
                                       price_band(price).to_owned(), attrs.clone());
                s.catalog = Some(Catalog {
                    facts: Arc::new(facts), price, currency: currency.clone(), min_age: *min_age,
                    regions: regions.clone(), ts, options: options.clone(),
                });
                s.dirty |= ITEM_CATALOG;
                if s.price.as_ref().is_none_or(|p| p.3 <= ts) {
                    s.price = Some((price, price, currency.clone(), ts));
                    s.dirty |= ITEM_PRICE;
                }
                return self.rows(py, s, sku, out);
            }
            ItemIn::Inventory { ts, location, on_hand, reserved, .. } => {
                if s.stock.get(location).is_none_or(|cur| cur.2 <= *ts) {
                    s.stock.insert(location.clone(), (*on_hand, *reserved, *ts));
                }
                s.stock_as_of = s.stock_as_of.max(*ts);
                s.dirty |= ITEM_STOCK;
                return self.rows(py, s, sku, out);
            }
            ItemIn::Price { ts, price, list_price, currency, .. } => {
                if s.price.as_ref().is_none_or(|p| p.3 <= *ts) {
                    s.price = Some((*price, *list_price, currency.clone(), *ts));
                    s.dirty |= ITEM_PRICE;
                }
                return self.rows(py, s, sku, out);
            }
            ItemIn::Behaviour { kind, ts, user, event_id, qty, unit_price, .. } =>
                (kind.as_str(), *ts, user, event_id, *qty, *unit_price),
        };
        let watermark = s.last_ts;
        if ts < watermark - self.lateness {
            let kw = PyDict::new(py);
            kw.set_item(intern!(py, "id"), format!("late:item:{sku}:{event_id}"))?;
            kw.set_item(intern!(py, "ts"), ts)?;
            kw.set_item(intern!(py, "entity"), "item")?;
            kw.set_item(intern!(py, "key"), sku)?;
            kw.set_item(intern!(py, "event_id"), event_id)?;
            kw.set_item(intern!(py, "event_ts"), ts)?;
            kw.set_item(intern!(py, "watermark"), watermark)?;
            kw.set_item(intern!(py, "lateness_ms"), watermark - ts)?;
            kw.set_item(intern!(py, "reason"), format!("older than the item's watermark minus the allowed \
                                           lateness ({} ms)", self.lateness))?;
            out.append(self.late_event.call(py, (), Some(&kw))?)?;
        } else {
            let k = match kind {
                "add_to_cart" => "c",
                "order" => "o",
                _ => "v",
            };
            s.pop.add(k, if k == "v" { 1.0 } else { qty as f64 }, ts);
            if k == "v" {
                s.trend.add("v", 1.0, ts);
            } else if k == "o" {
                s.cover.add("o", qty as f64, ts);
            }
            s.n_events += 1;
            s.last_ts = s.last_ts.max(ts);
            s.dirty |= ITEM_POPULARITY;
            if k == "o" {
                s.stock_as_of = s.stock_as_of.max(ts);
                s.dirty |= ITEM_STOCK;
            }
        }
        let facts = match &s.catalog {
            Some(c) if c.facts.category.is_empty() && c.facts.band.is_empty() => None,
            Some(c) => Some(c.facts.clone()),
            None if unit_price != 0.0 =>
                Some(Arc::new(Facts::new(String::new(), String::new(),
                                         price_band(unit_price).to_owned(), Vec::new()))),
            None => None,
        };
        if let Some(facts) = facts {
            side.hints.push(Hint { user: user.clone(), kind: kind.to_owned(), ts,
                                   event_id: event_id.clone(), facts });
        }
        Ok(())
    }

    fn rows(&self, py: Python<'_>, s: &mut ItemState, sku: &str, out: &Bound<'_, PyList>)
        -> PyResult<()> {
        for i in 0..4 {
            let bit = 1u8 << i;
            if s.dirty & bit == 0 {
                continue;
            }
            match bit {
                ITEM_POPULARITY => {
                    let row = self.popularity_row(py, s, s.last_ts)?;
                    out.append(self.write(py, sku, i, row, s.last_ts)?)?;
                    if let Some(c) = &s.catalog {
                        if !c.facts.category.is_empty() {
                            let v = s.trend.value("v", s.last_ts);
                            out.append(self.category_input(py, &c.facts.category, "trend", s.last_ts,
                                                           sku, v)?)?;
                        }
                    }
                }
                ITEM_STOCK => {
                    let row = self.stock_row(py, s, s.stock_as_of)?;
                    out.append(self.write(py, sku, i, row, s.stock_as_of)?)?;
                }
                ITEM_CATALOG => {
                    if let Some(c) = &s.catalog {
                        let row = PyDict::new(py);
                        row.set_item(intern!(py, "category"), &c.facts.category)?;
                        row.set_item(intern!(py, "brand"), &c.facts.brand)?;
                        row.set_item(intern!(py, "catalog_price"), c.price)?;
                        row.set_item(intern!(py, "min_age"), c.min_age)?;
                        row.set_item(intern!(py, "regions"), &c.regions)?;
                        row.set_item(intern!(py, "options"), &c.options)?;
                        row.set_item(intern!(py, "catalog_ts"), c.ts)?;
                        out.append(self.write(py, sku, i, row, c.ts)?)?;
                    }
                }
                _ => {
                    if let Some((p, lp, cur, ts)) = &s.price {
                        let row = PyDict::new(py);
                        row.set_item(intern!(py, "price"), *p)?;
                        row.set_item(intern!(py, "list_price"), *lp)?;
                        row.set_item(intern!(py, "currency"), cur)?;
                        row.set_item(intern!(py, "price_ts"), *ts)?;
                        out.append(self.write(py, sku, i, row, *ts)?)?;
                    }
                }
            }
        }
        s.dirty = 0;
        Ok(())
    }
}

shard_class!(ItemShard, ItemFold, ItemState);

#[pymethods]
impl ItemShard {
    /// `meta`: (store prefix, ttl) of item_catalog, item_popularity, item_price, item_stock;
    /// `classes`: StoreWrite, LateEvent, CategoryInput. Affinity hints leave as `HintBatch`es.
    #[new]
    fn new(lateness_ms: i64, meta: Vec<(String, i64)>,
           classes: (Py<PyAny>, Py<PyAny>, Py<PyAny>)) -> PyResult<Self> {
        if meta.len() != 4 {
            return Err(pyo3::exceptions::PyValueError::new_err("meta needs 4 views"));
        }
        let (store_write, late_event, category_input) = classes;
        Ok(ItemShard {
            fold: ItemFold { lateness: lateness_ms, meta, store_write, late_event, category_input },
            shard: crate::shard::Shard::new(),
        })
    }
}
