//! User and session features: `features/user_features.py`'s `UserFold`, natively.

use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use serde::{Deserialize, Serialize};

use crate::batch::{Facts, Hint, Pair, Side, UserIn};
use crate::kernels::decay::{encode_top, round_n, strongest, DecayedMap};
use crate::py::named;
use crate::shard::NativeFold;
use crate::shard_class;
use crate::kernels::windows::WindowCounts;

const H: i64 = 3_600_000;
const AFFINITY_HL: f64 = (7 * 24 * H) as f64;
const INTEREST_HL: f64 = (6 * H) as f64;
const SESSION_GAP: i64 = 30 * 60_000;
const MAX_AFFINITY: usize = 24;
const MAX_INTEREST: usize = 12;
const MAX_LAST: usize = 10;
const MAX_CART: usize = 10;
const MAX_BOUGHT: usize = 10;
const MAX_SESS_ITEMS: usize = 32;
const COVIS_LOOKBACK: usize = 3;
const MAX_CATEGORIES: usize = 3;
const COVIS_SEEDS: usize = 3;

// dirty views, bit order = sorted view names (the order rows are written in)
const SESSION_STATE: u8 = 1;
const USER_ACTIVITY: u8 = 2;
const USER_AFFINITY: u8 = 4;
const USER_CART: u8 = 8;
const USER_PURCHASES: u8 = 16;
const USER_RECENCY: u8 = 32;
const VIEWS: [&str; 6] = ["session_state", "user_activity", "user_affinity", "user_cart",
                          "user_purchases", "user_recency"];

fn weight(kind: &str) -> f64 {
    match kind {
        "add_to_cart" => 3.0,
        "order" => 5.0,
        _ => 1.0,
    }
}

fn type_index(kind: &str) -> usize {
    match kind {
        "add_to_cart" => 1,
        "order" => 2,
        _ => 0,
    }
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    id: String,
    start: i64,
    last: i64,
    hashes: Vec<u32>,
    cart_adds: i64,
    ordered: bool,
    recent: Vec<(String, i64)>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct UserState {
    last_ts: i64,
    n_events: i64,
    win: WindowCounts,
    aff: DecayedMap,
    interest: DecayedMap,
    last: Vec<String>,
    cart: Vec<(String, i64, f64)>,
    cart_ts: i64,
    n_orders: i64,
    spent: f64,
    last_order_ts: i64,
    bought: Vec<String>,
    consent: Option<Vec<String>>,
    sess: Option<Session>,
    dirty: u8,
    erased: bool,
    /// event time of the user's last erasure: older events and hints are dropped (tombstone)
    erased_until: i64,
}

impl UserState {
    fn new(lateness: i64) -> Self {
        UserState {
            last_ts: 0, n_events: 0, win: WindowCounts::new(lateness),
            aff: DecayedMap::new(AFFINITY_HL), interest: DecayedMap::new(INTEREST_HL),
            last: Vec::new(), cart: Vec::new(), cart_ts: 0, n_orders: 0, spent: 0.0,
            last_order_ts: 0, bought: Vec::new(), consent: None, sess: None, dirty: 0,
            erased: false, erased_until: -1,
        }
    }
}

/// A behaviour event as the fold reads it (from a `UserEvent` tuple or a `UserIn`).
struct Ev<'a> {
    user: &'a str,
    kind: &'a str,
    ts: i64,
    event_id: &'a str,
    session: &'a str,
    lines: &'a [(String, i64, f64)],
}

/// The classes the fold emits (from the Python side: one definition of each).
pub struct UserClasses {
    store_write: Py<PyAny>,
    store_purge: Py<PyAny>,
    late_event: Py<PyAny>,
    user_features: Py<PyAny>,
}

pub struct UserFold {
    lateness: i64,
    idle_reset_ms: i64,
    decision_inputs: bool,
    max_interests: usize,
    meta: Vec<(String, i64)>, // (store prefix, ttl) per VIEWS entry
    cls: UserClasses,
}

fn prefixed<'a>(aff: &'a DecayedMap, prefix: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    aff.w.iter().filter(move |(k, _)| k.starts_with(prefix)).map(move |(k, g)| (&k[prefix.len()..], *g))
}

fn top(aff: &DecayedMap, prefix: &str, k: usize, as_of: i64) -> String {
    encode_top(prefixed(aff, prefix), k, aff.decay(as_of))
}

fn stage(s: &Session) -> &'static str {
    if s.ordered {
        "purchased"
    } else if s.cart_adds > 0 {
        "considering"
    } else if s.hashes.len() >= 3 {
        "exploring"
    } else {
        "browsing"
    }
}

fn join(items: impl Iterator<Item = impl AsRef<str>>) -> String {
    let mut s = String::new();
    for (i, x) in items.enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(x.as_ref());
    }
    s
}

impl UserFold {
    fn store_write(&self, py: Python<'_>, entity: &Bound<'_, pyo3::types::PyString>, key: &str, view: usize, row: Bound<'_, PyDict>,
                   ts: i64) -> PyResult<Py<PyAny>> {
        let (prefix, ttl) = &self.meta[view];
        Ok(named(py, &self.cls.store_write, (entity, key, prefix.as_str(), row, ts, *ttl))?.unbind())
    }

    fn session_row(&self, py: Python<'_>, sess: &Session, user_id: &str) -> PyResult<Py<PyAny>> {
        let row = PyDict::new(py);
        row.set_item(intern!(py, "user_id"), user_id)?;
        row.set_item(intern!(py, "items_seen"), sess.hashes.len())?;
        row.set_item(intern!(py, "dwell_s"), (sess.last - sess.start) as f64 / 1000.0)?;
        row.set_item(intern!(py, "cart_adds"), sess.cart_adds)?;
        row.set_item(intern!(py, "intent_stage"), stage(sess))?;
        row.set_item(intern!(py, "start_ts"), sess.start)?;
        row.set_item(intern!(py, "last_ts"), sess.last)?;
        self.store_write(py, intern!(py, "session"), &format!("{}{}", session_prefix(user_id), sess.id), 0, row, sess.last)
    }

    /// An `AffinityHint` tuple: the same as a `HintBatch` record.
    fn affinity(&self, s: &mut UserState, x: &Bound<'_, PyTuple>) -> PyResult<()> {
        let facts = Facts::new(x.get_item(4)?.extract()?, x.get_item(5)?.extract()?,
                               x.get_item(6)?.extract()?, x.get_item(7)?.extract()?);
        let hint = Hint { user: x.get_item(0)?.extract()?, kind: x.get_item(1)?.extract()?,
                          ts: x.get_item(2)?.extract()?, event_id: x.get_item(3)?.extract()?,
                          facts: Arc::new(facts) };
        self.apply_hint(s, &hint)
    }

    fn recent(s: &mut UserState, sku: &str, ts: i64) {
        if ts >= s.last_ts {
            if let Some(i) = s.last.iter().position(|k| k == sku) {
                s.last.remove(i);
            }
            s.last.insert(0, sku.to_owned());
            s.last.truncate(MAX_LAST);
        } else if !s.last.iter().any(|k| k == sku) && s.last.len() < MAX_LAST {
            s.last.push(sku.to_owned());
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn session(&self, py: Python<'_>, s: &mut UserState, user_id: &str, session_id: &str, kind: &str,
               ts: i64, sku: &str, out: &Bound<'_, PyList>, side: &mut Side) -> PyResult<()> {
        let restart = match &s.sess {
            None => true,
            Some(sess) => sess.id != session_id || ts - sess.last > SESSION_GAP,
        };
        if restart {
            if let Some(sess) = &s.sess {
                if sess.id != session_id && ts < sess.start {
                    return Ok(()); // a late event of an earlier session
                }
                if s.dirty & SESSION_STATE != 0 {
                    out.append(self.session_row(py, sess, user_id)?)?;
                }
            }
            s.sess = Some(Session { id: session_id.to_owned(), start: ts, last: ts,
                                    hashes: Vec::new(), cart_adds: 0, ordered: false,
                                    recent: Vec::new() });
        }
        let sess = s.sess.as_mut().expect("set above");
        sess.start = sess.start.min(ts);
        sess.last = sess.last.max(ts);
        let h = crc32fast::hash(sku.as_bytes());
        if !sess.hashes.contains(&h) && sess.hashes.len() < MAX_SESS_ITEMS {
            sess.hashes.push(h);
        }
        if kind == "add_to_cart" {
            sess.cart_adds += 1;
        } else if kind == "order" {
            sess.ordered = true;
        }
        s.dirty |= SESSION_STATE;
        let buy = kind == "add_to_cart" || kind == "order";
        for (a, a_ts) in &sess.recent {
            if a != sku && (ts - a_ts).abs() <= SESSION_GAP {
                side.pairs.push(Pair { a: a.clone(), b: sku.to_owned(), buy, ts });
                if !buy {
                    side.pairs.push(Pair { a: sku.to_owned(), b: a.clone(), buy: false, ts });
                }
            }
        }
        let mut recent = Vec::with_capacity(COVIS_LOOKBACK);
        recent.push((sku.to_owned(), ts));
        for (k, t) in sess.recent.drain(..) {
            if k != sku && recent.len() < COVIS_LOOKBACK {
                recent.push((k, t));
            }
        }
        sess.recent = recent;
        Ok(())
    }

    /// A `LateEvent` for a user event dropped against ``watermark`` (lateness, or erasure).
    #[allow(clippy::too_many_arguments)]
    fn late(&self, py: Python<'_>, out: &Bound<'_, PyList>, user_id: &str, event_id: &str,
            ts: i64, watermark: i64, reason: &str) -> PyResult<()> {
        let kw = PyDict::new(py);
        kw.set_item(intern!(py, "id"), format!("late:user:{user_id}:{event_id}"))?;
        kw.set_item(intern!(py, "ts"), ts)?;
        kw.set_item(intern!(py, "entity"), "user")?;
        kw.set_item(intern!(py, "key"), user_id)?;
        kw.set_item(intern!(py, "event_id"), event_id)?;
        kw.set_item(intern!(py, "event_ts"), ts)?;
        kw.set_item(intern!(py, "watermark"), watermark)?;
        kw.set_item(intern!(py, "lateness_ms"), watermark - ts)?;
        kw.set_item(intern!(py, "reason"), reason)?;
        out.append(self.cls.late_event.call(py, (), Some(&kw))?)?;
        Ok(())
    }

    fn event(&self, py: Python<'_>, s: &mut UserState, e: Ev<'_>, out: &Bound<'_, PyList>,
             side: &mut Side) -> PyResult<()> {
        let (user_id, kind, ts, event_id) = (e.user, e.kind, e.ts, e.event_id);
        if ts <= s.erased_until {
            return self.late(py, out, user_id, event_id, ts, s.erased_until, ERASED_REASON);
        }
        if ts < s.last_ts - self.lateness {
            let reason = format!("older than the user's watermark minus the allowed lateness \
                                  ({} ms)", self.lateness);
            return self.late(py, out, user_id, event_id, ts, s.last_ts, &reason);
        }
        if s.n_events != 0 && ts - s.last_ts > self.idle_reset_ms {
            let consent = s.consent.take();
            let until = s.erased_until;
            *s = UserState::new(self.lateness);
            s.consent = consent;
            s.erased_until = until;
        }
        let session_id = e.session;
        let w = weight(kind);
        s.n_events += 1;
        s.last_ts = s.last_ts.max(ts);
        s.win.add(type_index(kind), ts);
        if s.win.rings[0].len() > 13 || s.win.rings[1].len() > 25 || s.win.rings[2].len() > 8 {
            s.win.prune(s.last_ts);
        }
        s.dirty |= USER_ACTIVITY | USER_RECENCY;
        let mut skus: Vec<&str> = Vec::with_capacity(e.lines.len());
        for (sku, qty, unit_price) in e.lines {
            let (sku, qty, unit_price) = (sku.as_str(), *qty, *unit_price);
            s.interest.add(sku, w, ts);
            Self::recent(s, sku, ts);
            if kind == "add_to_cart" {
                if let Some(c) = s.cart.iter_mut().find(|c| c.0 == sku) {
                    c.1 += qty;
                    c.2 = unit_price;
                } else {
                    s.cart.push((sku.to_owned(), qty, unit_price));
                }
                if s.cart.len() > MAX_CART {
                    s.cart.remove(0);
                }
                s.cart_ts = s.cart_ts.max(ts);
                s.dirty |= USER_CART;
            } else if kind == "order" {
                s.spent += qty as f64 * unit_price;
                if let Some(i) = s.bought.iter().position(|k| *k == sku) {
                    s.bought.remove(i);
                }
                s.bought.push(sku.to_owned());
                if let Some(i) = s.cart.iter().position(|c| c.0 == sku) {
                    s.cart.remove(i);
                    s.cart_ts = s.cart_ts.max(ts);
                    s.dirty |= USER_CART;
                }
            }
            self.session(py, s, user_id, session_id, kind, ts, sku, out, side)?;
            skus.push(sku);
        }
        s.interest.bound(MAX_INTEREST, 0);
        if kind == "order" {
            s.n_orders += 1;
            s.last_order_ts = s.last_order_ts.max(ts);
            if s.bought.len() > MAX_BOUGHT {
                let cut = s.bought.len() - MAX_BOUGHT;
                s.bought.drain(..cut);
            }
            s.dirty |= USER_PURCHASES;
        }
        if self.decision_inputs {
            let attrs = if kind == "page_view" || kind == "click" {
                top(&s.aff, "a:", 5, s.last_ts)
            } else {
                String::new()
            };
            let cats: Vec<&str> = strongest(prefixed(&s.aff, "c:"), MAX_CATEGORIES)
                .into_iter().map(|(k, _)| k).collect();
            let interests = PyList::empty(py);
            for (k, v) in s.interest.top(self.max_interests, s.last_ts) {
                interests.append((k, v))?;
            }
            let consent = match &s.consent {
                None => py.None(),
                Some(c) => PyTuple::new(py, c)?.into_any().unbind(),
            };
            let args = PyTuple::new(py, [
                PyString::new(py, user_id).into_any(),
                PyString::new(py, event_id).into_any(),
                ts.into_pyobject(py)?.into_any(),
                interests.into_any(),
                PyTuple::new(py, &s.bought)?.into_any(),
                consent.into_bound(py),
                false.into_pyobject(py)?.to_owned().into_any(),
                kind.into_pyobject(py)?.into_any(),
                PyTuple::new(py, &skus)?.into_any(),
                PyTuple::new(py, s.cart.iter().map(|c| c.0.as_str()))?.into_any(),
                attrs.into_pyobject(py)?.into_any(),
                PyTuple::new(py, cats)?.into_any(),
                PyTuple::new(py, s.last.iter().take(COVIS_SEEDS))?.into_any(),
            ])?;
            out.append(named(py, &self.cls.user_features, args)?)?;
        }
        Ok(())
    }

    fn row<'py>(&self, py: Python<'py>, bit: u8, s: &UserState, t: i64) -> PyResult<Bound<'py, PyDict>> {
        let row = PyDict::new(py);
        match bit {
            USER_ACTIVITY => {
                let names = [[intern!(py, "views_1h"), intern!(py, "carts_1h"), intern!(py, "orders_1h")],
                             [intern!(py, "views_24h"), intern!(py, "carts_24h"), intern!(py, "orders_24h")],
                             [intern!(py, "views_7d"), intern!(py, "carts_7d"), intern!(py, "orders_7d")]];
                for (i, keys) in names.iter().enumerate() {
                    let c = s.win.counts(i, t);
                    for (key, n) in keys.iter().zip(c) {
                        row.set_item(key, n)?;
                    }
                }
                row.set_item(intern!(py, "as_of"), t)?;
            }
            USER_AFFINITY => {
                for (field, p) in [(intern!(py, "top_categories"), "c:"), (intern!(py, "top_brands"), "b:"),
                                   (intern!(py, "top_price_bands"), "p:"), (intern!(py, "top_attributes"), "a:")] {
                    row.set_item(field, top(&s.aff, p, 5, t))?;
                }
                row.set_item(intern!(py, "as_of"), t)?;
            }
            USER_RECENCY => {
                row.set_item(intern!(py, "last_ts"), s.last_ts)?;
                row.set_item(intern!(py, "n_events"), s.n_events)?;
                row.set_item(intern!(py, "last_items"), join(s.last.iter()))?;
            }
            USER_CART => {
                row.set_item(intern!(py, "cart_items"), join(s.cart.iter().map(|c| c.0.as_str())))?;
                if s.cart.is_empty() {
                    row.set_item(intern!(py, "cart_value"), 0i64)?; // Python: round(sum([]), 2) == 0 (int)
                } else {
                    let mut total = 0.0f64;
                    for c in &s.cart {
                        total += c.1 as f64 * c.2;
                    }
                    row.set_item(intern!(py, "cart_value"), round_n(total, 2))?;
                }
                row.set_item(intern!(py, "as_of"), t)?;
            }
            USER_PURCHASES => {
                row.set_item(intern!(py, "n_orders"), s.n_orders)?;
                row.set_item(intern!(py, "total_spent"), round_n(s.spent, 2))?;
                let avg = if s.n_orders != 0 { round_n(s.spent / s.n_orders as f64, 2) } else { 0.0 };
                row.set_item(intern!(py, "avg_order_value"), avg)?;
                row.set_item(intern!(py, "last_order_ts"), s.last_order_ts)?;
                row.set_item(intern!(py, "purchased_items"), join(s.bought.iter().rev()))?;
                row.set_item(intern!(py, "as_of"), t)?;
            }
            _ => unreachable!(),
        }
        Ok(row)
    }
}

impl NativeFold for UserFold {
    type State = UserState;

    fn new_state(&self) -> UserState {
        UserState::new(self.lateness)
    }

    fn apply_hint(&self, s: &mut UserState, h: &Hint) -> PyResult<()> {
        if h.ts <= s.erased_until {
            return Ok(()); // before the user's erasure (see UserFold._affinity)
        }
        s.aff.add_all(h.facts.keys.iter().map(|k| k.as_str()), weight(&h.kind), h.ts);
        s.aff.bound(MAX_AFFINITY, 4);
        s.dirty |= USER_AFFINITY;
        Ok(())
    }

    fn apply(&self, py: Python<'_>, s: &mut UserState, x: &Bound<'_, PyTuple>,
             out: &Bound<'_, PyList>, side: &mut Side) -> PyResult<()> {
        let kind_obj = x.get_item(1)?;
        let kind: &str = kind_obj.cast::<PyString>()?.to_str()?;
        if kind == "consent" {
            let ts: i64 = x.get_item(2)?.extract()?;
            if ts > s.erased_until {
                s.consent = Some(x.get_item(4)?.extract()?);
            }
            return Ok(());
        }
        if kind == "erase" {
            // the state goes; a tombstone stays: events up to the erasure's time are dropped
            // whenever they arrive (erasure is the same whatever the order of arrival)
            let ts: i64 = x.get_item(2)?.extract()?;
            let until = s.erased_until.max(ts);
            *s = UserState::new(self.lateness);
            s.erased_until = until;
            let uid = x.get_item(0)?;
            out.append(self.cls.store_purge.call1(py, ("user", &uid, false))?)?;
            out.append(self.cls.store_purge.call1(py, ("feed", &uid, false))?)?;
            let prefix = session_prefix(&uid.extract::<String>()?);
            out.append(self.cls.store_purge.call1(py, ("session", prefix, true))?)?;
            if self.decision_inputs {
                let empty = PyTuple::empty(py);
                let args = PyTuple::new(py, [
                    uid.clone(), x.get_item(3)?, x.get_item(2)?, PyList::empty(py).into_any(),
                    empty.clone().into_any(), py.None().into_bound(py),
                    true.into_pyobject(py)?.to_owned().into_any(),
                    "".into_pyobject(py)?.into_any(), empty.clone().into_any(),
                    empty.clone().into_any(), "".into_pyobject(py)?.into_any(),
                    empty.clone().into_any(), empty.into_any(),
                ])?;
                out.append(named(py, &self.cls.user_features, args)?)?;
            }
            return Ok(());
        }
        if x.len() == 8 {
            return self.affinity(s, x);
        }
        let lines: Vec<(String, i64, f64)> = x.get_item(5)?.extract()?;
        let (user_o, event_o, session_o) = (x.get_item(0)?, x.get_item(3)?, x.get_item(4)?);
        let ev = Ev { user: user_o.cast::<PyString>()?.to_str()?, kind, ts: x.get_item(2)?.extract()?,
                      event_id: event_o.cast::<PyString>()?.to_str()?,
                      session: session_o.cast::<PyString>()?.to_str()?, lines: &lines };
        self.event(py, s, ev, out, side)
    }

    fn apply_user(&self, py: Python<'_>, s: &mut UserState, x: &UserIn, out: &Bound<'_, PyList>,
                  side: &mut Side) -> PyResult<()> {
        match x {
            UserIn::Consent { purposes, ts, .. } => {
                if *ts > s.erased_until {
                    s.consent = Some(purposes.clone());
                }
                Ok(())
            }
            UserIn::Event { user, kind, ts, event_id, session, lines, .. } =>
                self.event(py, s, Ev { user, kind, ts: *ts, event_id, session, lines }, out, side),
        }
    }

    fn rows(&self, py: Python<'_>, s: &mut UserState, key: &str, out: &Bound<'_, PyList>)
        -> PyResult<()> {
        if s.dirty == 0 || s.erased {
            return Ok(());
        }
        let t = s.last_ts;
        for (i, _) in VIEWS.iter().enumerate() {
            let bit = 1u8 << i;
            if s.dirty & bit == 0 {
                continue;
            }
            if bit == SESSION_STATE {
                if let Some(sess) = &s.sess {
                    out.append(self.session_row(py, sess, key)?)?;
                }
                continue;
            }
            let vt = match bit {
                USER_CART => s.cart_ts,
                USER_PURCHASES => s.last_order_ts,
                _ => t,
            };
            let row = self.row(py, bit, s, vt)?;
            out.append(self.store_write(py, intern!(py, "user"), key, i, row, vt)?)?;
        }
        s.dirty = 0;
        Ok(())
    }

    fn erased(&self, st: &UserState) -> bool {
        st.erased
    }
}

shard_class!(UserShard, UserFold, UserState);

#[pymethods]
impl UserShard {
    /// `meta`: (store prefix, ttl) of session_state, user_activity, user_affinity, user_cart,
    /// user_purchases, user_recency; `classes`: StoreWrite, StorePurge, LateEvent,
    /// UserFeatures.
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(lateness_ms: i64, idle_reset_ms: i64, decision_inputs: bool, max_interests: usize,
           meta: Vec<(String, i64)>, classes: (Py<PyAny>, Py<PyAny>, Py<PyAny>, Py<PyAny>))
           -> PyResult<Self> {
        if meta.len() != VIEWS.len() {
            return Err(pyo3::exceptions::PyValueError::new_err("meta needs 6 views"));
        }
        let (store_write, store_purge, late_event, user_features) = classes;
        Ok(UserShard {
            fold: UserFold { lateness: lateness_ms, idle_reset_ms, decision_inputs, max_interests,
                             meta, cls: UserClasses { store_write, store_purge, late_event,
                                                      user_features } },
            shard: crate::shard::Shard::new(),
        })
    }
}

/// The start of every session key of `user_id` and of no other user's (`/` and `%` escaped),
/// as `features.user_features.session_prefix` builds it.
fn session_prefix(user_id: &str) -> String {
    format!("{}/", user_id.replace('%', "%25").replace('/', "%2F"))
}

const ERASED_REASON: &str = "at or before the user's erasure: dropped";
