//! The ingest fast path: raw JSON records straight to the feature steps' input tuples.
//!
//! Only what it is sure pydantic would accept *with the same values* is handled here (the
//! behaviour, stock, price and consent events of `features/events.py`, strict as their
//! models); anything else (catalog and control events, malformed or unusual records) goes
//! to the Python fallback, which validates with pydantic and dead-letters with its reason.
//! Record order is kept either way.

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use serde::{Deserialize, Deserializer};

use crate::batch::{ItemIn, ItemInBatch, UserIn, UserInBatch};

const MAX_EVENT_BYTES: usize = 64 * 1024;
const MAX_TS: i64 = 4_102_444_800_000;
const PURPOSES: [&str; 4] = ["personalization", "marketing", "analytics", "feature_storage"];

/// A JSON field: absent, null, or a value (pydantic treats absent and null differently).
#[derive(Default)]
enum F<T> {
    #[default]
    Absent,
    Null,
    Val(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for F<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            None => F::Null,
            Some(v) => F::Val(v),
        })
    }
}

impl<T> F<T> {
    fn present(&self) -> bool {
        !matches!(self, F::Absent)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    sku: String,
    quantity: i64,
    unit_price: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    schema_version: F<i64>,
    #[serde(default)]
    event_id: F<String>,
    #[serde(default)]
    ts: F<i64>,
    #[serde(default)]
    user_id: F<String>,
    #[serde(default)]
    session_id: F<String>,
    #[serde(default)]
    sku: F<String>,
    #[serde(default)]
    referrer: F<String>,
    #[serde(default)]
    position: F<i64>,
    #[serde(default)]
    surface: F<String>,
    #[serde(default)]
    quantity: F<i64>,
    #[serde(default)]
    unit_price: F<f64>,
    #[serde(default)]
    order_id: F<String>,
    #[serde(default)]
    lines: F<Vec<Line>>,
    #[serde(default)]
    currency: F<String>,
    #[serde(default)]
    location: F<String>,
    #[serde(default)]
    on_hand: F<i64>,
    #[serde(default)]
    reserved: F<i64>,
    #[serde(default)]
    price: F<f64>,
    #[serde(default)]
    list_price: F<f64>,
    #[serde(default)]
    unit_cost: F<f64>,
    #[serde(default)]
    purposes: F<Vec<String>>,
    #[serde(default)]
    title: F<String>,
    #[serde(default)]
    category_path: F<Vec<String>>,
    #[serde(default)]
    brand: F<String>,
    #[serde(default)]
    attributes: F<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    option_groups: F<Vec<serde::de::IgnoredAny>>,
    #[serde(default)]
    compatibility: F<Vec<serde::de::IgnoredAny>>,
    #[serde(default)]
    min_age: F<i64>,
    #[serde(default)]
    regions: F<Vec<String>>,
    #[serde(default)]
    active: F<bool>,
}

fn chars_in(s: &str, lo: usize, hi: usize) -> bool {
    let n = if s.is_ascii() { s.len() } else { s.chars().count() };
    lo <= n && n <= hi
}

/// A required id (1..=128 characters).
fn id(f: &F<String>) -> Option<&str> {
    match f {
        F::Val(s) if chars_in(s, 1, 128) => Some(s),
        _ => None,
    }
}

/// An optional string field: absent or null is fine, else at most `max` characters.
fn opt_text(f: &F<String>, max: usize) -> bool {
    match f {
        F::Val(s) => chars_in(s, 0, max),
        _ => true,
    }
}

fn money(v: f64) -> bool {
    v.is_finite() && (0.0..=10_000_000.0).contains(&v)
}

/// An optional money field: `Some(None)` absent/null, `Some(Some(v))` valid, `None` invalid.
fn opt_money(f: &F<f64>) -> Option<Option<f64>> {
    match f {
        F::Val(v) if money(*v) => Some(Some(*v)),
        F::Val(_) => None,
        _ => Some(None),
    }
}

fn int_in(f: &F<i64>, lo: i64, hi: i64) -> Option<i64> {
    match f {
        F::Val(v) if lo <= *v && *v <= hi => Some(*v),
        _ => None,
    }
}

fn currency(f: &F<String>) -> Option<&str> {
    match f {
        F::Val(s) if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) => Some(s),
        _ => None,
    }
}

/// Python's `x or 0.0` for an optional float.
fn or_zero(v: Option<f64>) -> f64 {
    match v {
        Some(x) if x != 0.0 => x,
        _ => 0.0,
    }
}

/// The input tuples of one record, or `None` when the fallback must decide.
fn fast(value: &[u8], max_ts: i64, items: &mut Vec<ItemIn>, users: &mut Vec<UserIn>)
        -> PyResult<bool> {
    if value.len() > MAX_EVENT_BYTES {
        return Ok(false);
    }
    let r: Raw = match serde_json::from_slice(value) {
        Ok(r) => r,
        Err(_) => return Ok(false),
    };
    match r.schema_version {
        F::Absent | F::Val(1) => {}
        _ => return Ok(false),
    }
    let (Some(event_id), Some(ts)) = (id(&r.event_id), int_in(&r.ts, 0, max_ts)) else {
        return Ok(false);
    };
    let ty = r.ty.as_str();
    // fields present beyond the common ones must all belong to this type
    let present = [
        ("user_id", r.user_id.present()), ("session_id", r.session_id.present()),
        ("sku", r.sku.present()), ("referrer", r.referrer.present()),
        ("position", r.position.present()), ("surface", r.surface.present()),
        ("quantity", r.quantity.present()), ("unit_price", r.unit_price.present()),
        ("order_id", r.order_id.present()), ("lines", r.lines.present()),
        ("currency", r.currency.present()), ("location", r.location.present()),
        ("on_hand", r.on_hand.present()), ("reserved", r.reserved.present()),
        ("price", r.price.present()), ("list_price", r.list_price.present()),
        ("unit_cost", r.unit_cost.present()), ("purposes", r.purposes.present()),
        ("title", r.title.present()), ("category_path", r.category_path.present()),
        ("brand", r.brand.present()), ("attributes", r.attributes.present()),
        ("option_groups", r.option_groups.present()), ("compatibility", r.compatibility.present()),
        ("min_age", r.min_age.present()), ("regions", r.regions.present()),
        ("active", r.active.present()),
    ];
    let allowed: &[&str] = match ty {
        "page_view" => &["user_id", "session_id", "sku", "referrer"],
        "click" => &["user_id", "session_id", "sku", "position", "surface"],
        "add_to_cart" => &["user_id", "session_id", "sku", "quantity", "unit_price"],
        "order" => &["user_id", "session_id", "order_id", "lines", "currency"],
        "inventory" => &["sku", "location", "on_hand", "reserved"],
        "price" => &["sku", "price", "currency", "list_price", "unit_cost"],
        "consent" => &["user_id", "purposes"],
        "catalog" => &["sku", "title", "category_path", "brand", "price", "currency", "attributes",
                       "option_groups", "compatibility", "min_age", "regions", "active"],
        _ => return Ok(false),
    };
    if present.iter().any(|(name, p)| *p && !allowed.contains(name)) {
        return Ok(false);
    }
    match ty {
        "page_view" | "click" | "add_to_cart" => {
            let (Some(user), Some(session), Some(sku)) = (id(&r.user_id), id(&r.session_id), id(&r.sku))
            else {
                return Ok(false);
            };
            let (qty, unit_price) = if ty == "add_to_cart" {
                let qty = match &r.quantity {
                    F::Absent => 1,
                    q => match int_in(q, 1, 10_000) {
                        Some(q) => q,
                        None => return Ok(false),
                    },
                };
                let Some(p) = opt_money(&r.unit_price) else { return Ok(false) };
                (qty, or_zero(p))
            } else {
                let ok = if ty == "page_view" {
                    opt_text(&r.referrer, 512)
                } else {
                    opt_text(&r.surface, 64) && match &r.position {
                        F::Val(p) => (0..=10_000).contains(p),
                        F::Null | F::Absent => true,
                    }
                };
                if !ok {
                    return Ok(false);
                }
                (1, 0.0)
            };
            items.push(ItemIn::Behaviour { sku: sku.to_owned(), kind: ty.to_owned(), ts,
                                           user: user.to_owned(), event_id: event_id.to_owned(),
                                           session: session.to_owned(), qty, unit_price });
            users.push(UserIn::Event { user: user.to_owned(), kind: ty.to_owned(), ts,
                                       event_id: event_id.to_owned(), session: session.to_owned(),
                                       lines: vec![(sku.to_owned(), qty, unit_price)],
                                       order_id: String::new() });
        }
        "order" => {
            let (Some(user), Some(order_id), Some(_)) = (id(&r.user_id), id(&r.order_id), currency(&r.currency))
            else {
                return Ok(false);
            };
            let session = match &r.session_id {
                F::Absent | F::Null => "",
                s => match id(s) {
                    Some(s) => s,
                    None => return Ok(false),
                },
            };
            let F::Val(lines) = &r.lines else { return Ok(false) };
            if lines.is_empty() || lines.len() > 200 || !lines.iter().all(|l| {
                chars_in(&l.sku, 1, 128) && (1..=10_000).contains(&l.quantity) && money(l.unit_price)
            }) {
                return Ok(false);
            }
            for l in lines {
                items.push(ItemIn::Behaviour { sku: l.sku.clone(), kind: ty.to_owned(), ts,
                                               user: user.to_owned(), event_id: event_id.to_owned(),
                                               session: session.to_owned(), qty: l.quantity,
                                               unit_price: l.unit_price });
            }
            users.push(UserIn::Event { user: user.to_owned(), kind: ty.to_owned(), ts,
                                       event_id: event_id.to_owned(), session: session.to_owned(),
                                       lines: lines.iter().map(|l| (l.sku.clone(), l.quantity, l.unit_price)).collect(),
                                       order_id: order_id.to_owned() });
        }
        "inventory" => {
            let (Some(sku), Some(location), Some(on_hand)) = (id(&r.sku), id(&r.location), int_in(&r.on_hand, 0, 100_000_000))
            else {
                return Ok(false);
            };
            let reserved = match &r.reserved {
                F::Absent => 0,
                x => match int_in(x, 0, 100_000_000) {
                    Some(v) => v,
                    None => return Ok(false),
                },
            };
            items.push(ItemIn::Inventory { sku: sku.to_owned(), ts, location: location.to_owned(),
                                           on_hand, reserved });
        }
        "price" => {
            let (Some(sku), Some(cur)) = (id(&r.sku), currency(&r.currency)) else { return Ok(false) };
            let F::Val(price) = r.price else { return Ok(false) };
            let (Some(list_price), Some(_)) = (opt_money(&r.list_price), opt_money(&r.unit_cost)) else {
                return Ok(false);
            };
            if !money(price) {
                return Ok(false);
            }
            let list = match list_price {
                Some(lp) if lp != 0.0 => lp,
                _ => price,
            };
            items.push(ItemIn::Price { sku: sku.to_owned(), ts, price, list_price: list,
                                       currency: cur.to_owned() });
        }
        "catalog" => {
            // items with configurable options (JSON re-encoded by pydantic) go to Python
            let empty = |f: &F<Vec<serde::de::IgnoredAny>>| match f {
                F::Absent => true,
                F::Val(v) => v.is_empty(),
                F::Null => false,
            };
            if !empty(&r.option_groups) || !empty(&r.compatibility) {
                return Ok(false);
            }
            let (Some(sku), Some(cur), F::Val(title), F::Val(path), F::Val(brand), F::Val(price)) =
                (id(&r.sku), currency(&r.currency), &r.title, &r.category_path, &r.brand, r.price)
            else {
                return Ok(false);
            };
            if !chars_in(title, 0, 512) || !chars_in(brand, 0, 128) || !money(price)
                || path.is_empty() || path.len() > 8 || !path.iter().all(|p| chars_in(p, 1, 64)) {
                return Ok(false);
            }
            let attrs: Vec<String> = match &r.attributes {
                F::Absent => Vec::new(),
                F::Val(m) if m.len() <= 64 && m.values().all(|v| chars_in(v, 0, 512)) => {
                    let mut a: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    a.sort();
                    a
                }
                _ => return Ok(false),
            };
            let min_age = match &r.min_age {
                F::Absent => 0,
                x => match int_in(x, 0, 99) {
                    Some(v) => v,
                    None => return Ok(false),
                },
            };
            let regions = match &r.regions {
                F::Absent => String::new(),
                F::Val(v) if v.len() <= 64 && v.iter().all(|x| chars_in(x, 0, 8)) => v.join(","),
                _ => return Ok(false),
            };
            if matches!(r.active, F::Null) {
                return Ok(false);
            }
            items.push(ItemIn::Catalog { sku: sku.to_owned(), ts, category: path.join("/"),
                                         brand: brand.clone(), price, currency: cur.to_owned(),
                                         attrs, min_age, regions, options: String::new() });
        }
        "consent" => {
            let Some(user) = id(&r.user_id) else { return Ok(false) };
            let F::Val(purposes) = &r.purposes else { return Ok(false) };
            if purposes.len() > PURPOSES.len() || !purposes.iter().all(|p| PURPOSES.contains(&p.as_str())) {
                return Ok(false);
            }
            users.push(UserIn::Consent { user: user.to_owned(), ts, event_id: event_id.to_owned(),
                                         purposes: purposes.clone() });
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Raw records (`features.validate.RawRecord`) → `(item inputs, user inputs, controls,
/// dead letters)`, in record order. What the fast path takes arrives as `ItemInBatch` /
/// `UserInBatch` objects (runs of consecutive records); `fallback(record)` returns the four
/// lists (tuples, events, dead letters) for a record the fast path leaves to Python.
/// `max_future_ms` (>= 0): an event more than this after its record's received time (when
/// known) is left to the fallback, which makes it a dead letter.
#[pyfunction]
#[pyo3(signature = (records, fallback, max_future_ms=-1))]
pub fn ingest<'py>(py: Python<'py>, records: &Bound<'py, PyList>, fallback: &Bound<'py, PyAny>,
                   max_future_ms: i64) -> PyResult<Bound<'py, PyTuple>> {
    let items = PyList::empty(py);
    let users = PyList::empty(py);
    let controls = PyList::empty(py);
    let dead = PyList::empty(py);
    let (mut item_run, mut user_run): (Vec<ItemIn>, Vec<UserIn>) = (Vec::new(), Vec::new());
    let flush = |item_run: &mut Vec<ItemIn>, user_run: &mut Vec<UserIn>| -> PyResult<()> {
        if !item_run.is_empty() {
            items.append(Bound::new(py, ItemInBatch { items: std::mem::take(item_run) })?)?;
        }
        if !user_run.is_empty() {
            users.append(Bound::new(py, UserInBatch { items: std::mem::take(user_run) })?)?;
        }
        Ok(())
    };
    for rec in records.iter() {
        let t = rec.cast::<PyTuple>()?;
        let value = t.get_item(3)?;
        let received: i64 = t.get_item(4)?.extract().unwrap_or(0);
        let max_ts = if max_future_ms >= 0 && received > 0 {
            MAX_TS.min(received.saturating_add(max_future_ms))
        } else {
            MAX_TS
        };
        let handled = match (value.cast::<pyo3::types::PyBytes>(), t.get_item(5)?.is_none()) {
            (Ok(b), true) => fast(b.as_bytes(), max_ts, &mut item_run, &mut user_run)?,
            _ => false,
        };
        if !handled {
            flush(&mut item_run, &mut user_run)?;
            let res = fallback.call1((rec,))?;
            let res = res.cast::<PyTuple>()?;
            for (i, out) in [&items, &users, &controls, &dead].iter().enumerate() {
                for x in res.get_item(i)?.try_iter()? {
                    out.append(x?)?;
                }
            }
        }
    }
    flush(&mut item_run, &mut user_run)?;
    PyTuple::new(py, [items, users, controls, dead])
}
