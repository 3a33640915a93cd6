//! Batches of the records that pass between native shards (co-visitation pairs from the user
//! step, catalog facts for the user step from the item step): one Python object per batch
//! instead of one tuple per record. Picklable, so they cross workers like any item.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use serde::{Deserialize, Serialize};

/// Items co-visited in a session: `b` follows `a` ("vv" view→view, "vb" view→buy).
#[derive(Clone, Serialize, Deserialize)]
pub struct Pair {
    pub a: String,
    pub b: String,
    pub buy: bool,
    pub ts: i64,
}

/// An item's catalog facts as the user step uses them.
#[derive(Serialize, Deserialize)]
pub struct Facts {
    pub category: String,
    pub brand: String,
    pub band: String,
    pub attrs: Vec<String>,
    /// affinity keys in the user fold's order: "p:<band>", then "c:", "b:", "a:..." if the
    /// item has a category (as `UserFold._affinity`)
    pub keys: Vec<String>,
}

impl Facts {
    pub fn new(category: String, brand: String, band: String, attrs: Vec<String>) -> Self {
        let mut keys = Vec::with_capacity(3 + attrs.len());
        if !band.is_empty() {
            keys.push(format!("p:{band}"));
        }
        if !category.is_empty() {
            keys.push(format!("c:{category}"));
            keys.push(format!("b:{brand}"));
            keys.extend(attrs.iter().map(|a| format!("a:{a}")));
        }
        Facts { category, brand, band, attrs, keys }
    }
}

/// `features.interactions.AffinityHint`, natively.
#[derive(Clone, Serialize, Deserialize)]
pub struct Hint {
    pub user: String,
    pub kind: String,
    pub ts: i64,
    pub event_id: String,
    pub facts: Arc<Facts>,
}

fn dump<T: Serialize>(v: &T) -> PyResult<Vec<u8>> {
    crate::codec::encode(v).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
}

fn load<T: for<'de> Deserialize<'de>>(b: &[u8]) -> PyResult<T> {
    crate::codec::decode(b).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
}

#[pyclass(module = "bespoke_native")]
pub struct PairBatch {
    pub items: Vec<Pair>,
}

#[pymethods]
impl PairBatch {
    #[new]
    #[pyo3(signature = (data=None))]
    fn new(data: Option<&[u8]>) -> PyResult<Self> {
        Ok(PairBatch { items: match data { Some(b) => load(b)?, None => Vec::new() } })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let data = dump(&slf.borrow().items)?;
        Ok((slf.get_type().into_any(), (PyBytes::new(slf.py(), &data),)))
    }

    fn __len__(&self) -> usize {
        self.items.len()
    }

    /// The pairs as `(a, b, "vv" | "vb", ts)` tuples (what the Python user fold emits).
    fn tuples<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        self.items.iter()
            .map(|p| PyTuple::new(py, [p.a.as_str().into_pyobject(py)?.into_any(),
                                       p.b.as_str().into_pyobject(py)?.into_any(),
                                       (if p.buy { "vb" } else { "vv" }).into_pyobject(py)?.into_any(),
                                       p.ts.into_pyobject(py)?.into_any()]))
            .collect()
    }
}

#[pyclass(module = "bespoke_native")]
pub struct HintBatch {
    pub items: Vec<Hint>,
}

#[pymethods]
impl HintBatch {
    #[new]
    #[pyo3(signature = (data=None))]
    fn new(data: Option<&[u8]>) -> PyResult<Self> {
        Ok(HintBatch { items: match data { Some(b) => load(b)?, None => Vec::new() } })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let data = dump(&slf.borrow().items)?;
        Ok((slf.get_type().into_any(), (PyBytes::new(slf.py(), &data),)))
    }

    fn __len__(&self) -> usize {
        self.items.len()
    }

    /// The hints as `AffinityHint` fields: `(user, kind, ts, event_id, category, brand,
    /// band, attrs)`.
    #[allow(clippy::type_complexity)]
    fn tuples(&self) -> Vec<(String, String, i64, String, String, String, String, Vec<String>)> {
        self.items.iter()
            .map(|h| (h.user.clone(), h.kind.clone(), h.ts, h.event_id.clone(),
                      h.facts.category.clone(), h.facts.brand.clone(), h.facts.band.clone(),
                      h.facts.attrs.clone()))
            .collect()
    }
}

/// Records a fold emits into batches, appended to the step's output once per call.
#[derive(Default)]
pub struct Side {
    pub pairs: Vec<Pair>,
    pub hints: Vec<Hint>,
}
