//! Item-to-item co-visitation: `features/covisitation.py`'s `CovisFold`, natively.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use serde::{Deserialize, Serialize};

use crate::batch::{Pair, Side};
use crate::kernels::decay::{fmt4, DecayedMap};
use crate::py::named;
use crate::shard::NativeFold;
use crate::shard_class;

const HL: f64 = (7 * 24 * 3_600_000i64) as f64;
const CAPACITY: usize = 24;
const K: usize = 10;

#[derive(Clone, Serialize, Deserialize)]
pub struct CovisState {
    vv: DecayedMap,
    vb: DecayedMap,
    last_ts: i64,
    dirty: bool,
}

/// Space-saving insert: a new key past `cap` replaces the weakest, inheriting its weight.
fn add_capped(m: &mut DecayedMap, key: &str, amount: f64, ts: i64, cap: usize) {
    if !m.w.contains_key(key) && m.w.len() >= cap {
        let (wk, wv) = m.w.iter()
            .min_by(|a, b| a.1.partial_cmp(b.1).unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.0.cmp(b.0)))
            .map(|(k, v)| (k.clone(), *v))
            .expect("cap > 0");
        m.w.remove(&wk);
        m.add(key, 0.0, ts);
        m.w.insert(key.to_owned(), wv);
    }
    m.add(key, amount, ts);
}

fn encode(m: &DecayedMap, t: i64) -> String {
    let mut s = String::new();
    for (i, (k, w)) in m.top(K, t).into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&k);
        s.push(':');
        s.push_str(&fmt4(w));
    }
    s
}

pub struct CovisFold {
    prefix: String,
    ttl: i64,
    store_write: Py<PyAny>,
}

impl NativeFold for CovisFold {
    type State = CovisState;

    fn touch(&self, s: &mut CovisState) -> bool {
        s.dirty = s.dirty || s.last_ts > 0;
        s.dirty
    }

    fn new_state(&self) -> CovisState {
        CovisState { vv: DecayedMap::new(HL), vb: DecayedMap::new(HL), last_ts: 0, dirty: false }
    }

    fn apply_pair(&self, s: &mut CovisState, p: &Pair) -> PyResult<()> {
        add_capped(if p.buy { &mut s.vb } else { &mut s.vv }, &p.b, 1.0, p.ts, CAPACITY);
        s.last_ts = s.last_ts.max(p.ts);
        s.dirty = true;
        Ok(())
    }

    fn apply(&self, _py: Python<'_>, s: &mut CovisState, x: &Bound<'_, PyTuple>,
             _out: &Bound<'_, PyList>, _side: &mut Side) -> PyResult<()> {
        let b: String = x.get_item(1)?.extract()?;
        let rel = x.get_item(2)?;
        let ts: i64 = x.get_item(3)?.extract()?;
        let m = if rel.extract::<&str>()? == "vv" { &mut s.vv } else { &mut s.vb };
        add_capped(m, &b, 1.0, ts, CAPACITY);
        s.last_ts = s.last_ts.max(ts);
        s.dirty = true;
        Ok(())
    }

    fn rows(&self, py: Python<'_>, s: &mut CovisState, key: &str, out: &Bound<'_, PyList>)
        -> PyResult<()> {
        if !s.dirty {
            return Ok(());
        }
        s.dirty = false;
        let t = s.last_ts;
        let row = PyDict::new(py);
        row.set_item(intern!(py, "view_view"), encode(&s.vv, t))?;
        row.set_item(intern!(py, "view_buy"), encode(&s.vb, t))?;
        row.set_item(intern!(py, "as_of"), t)?;
        out.append(named(py, &self.store_write, (intern!(py, "item"), key, self.prefix.as_str(), row, t,
                                                  self.ttl))?)?;
        Ok(())
    }
}

shard_class!(CovisShard, CovisFold, CovisState);

#[pymethods]
impl CovisShard {
    #[new]
    fn new(prefix: String, ttl_s: i64, store_write: Py<PyAny>) -> Self {
        CovisShard { fold: CovisFold { prefix, ttl: ttl_s, store_write },
                     shard: crate::shard::Shard::new() }
    }
}
