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
    crate::kernels::codec::encode(v).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
}

fn load<T: for<'de> Deserialize<'de>>(b: &[u8]) -> PyResult<T> {
    crate::kernels::codec::decode(b).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
}

/// A picklable batch of records (`__reduce__` carries them as varint bincode).
macro_rules! batch_class {
    ($name:ident, $item:ty) => {
        #[pyclass(module = "bespoke_native")]
        pub struct $name {
            pub items: Vec<$item>,
        }

        #[pymethods]
        impl $name {
            #[new]
            #[pyo3(signature = (data=None))]
            fn new(data: Option<&[u8]>) -> PyResult<Self> {
                Ok($name { items: match data { Some(b) => load(b)?, None => Vec::new() } })
            }

            fn __reduce__<'py>(slf: &Bound<'py, Self>)
                               -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
                let data = dump(&slf.borrow().items)?;
                Ok((slf.get_type().into_any(), (PyBytes::new(slf.py(), &data),)))
            }

            fn __len__(&self) -> usize {
                self.items.len()
            }
        }
    };
}

batch_class!(PairBatch, Pair);
batch_class!(HintBatch, Hint);
batch_class!(ItemInBatch, ItemIn);
batch_class!(UserInBatch, UserIn);

#[pymethods]
impl PairBatch {
    /// The pairs as `(a, b, "vv" | "vb", ts)` tuples (what the Python user fold emits).
    fn tuples<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        self.items.iter()
            .map(|p| (p.a.as_str(), p.b.as_str(), if p.buy { "vb" } else { "vv" }, p.ts)
                .into_pyobject(py))
            .collect()
    }
}

#[pymethods]
impl HintBatch {
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

/// An item step input (`features.interactions.item_inputs`), natively.
#[derive(Clone, Serialize, Deserialize)]
pub enum ItemIn {
    Behaviour { sku: String, kind: String, ts: i64, user: String, event_id: String,
                session: String, qty: i64, unit_price: f64 },
    Catalog { sku: String, ts: i64, category: String, brand: String, price: f64,
              currency: String, attrs: Vec<String>, min_age: i64, regions: String,
              options: String },
    Inventory { sku: String, ts: i64, location: String, on_hand: i64, reserved: i64 },
    Price { sku: String, ts: i64, price: f64, list_price: f64, currency: String },
}

impl ItemIn {
    pub fn sku(&self) -> &str {
        match self {
            ItemIn::Behaviour { sku, .. } | ItemIn::Catalog { sku, .. }
            | ItemIn::Inventory { sku, .. } | ItemIn::Price { sku, .. } => sku,
        }
    }

    /// From the tuple `item_inputs` makes.
    pub fn from_tuple(x: &Bound<'_, PyTuple>) -> PyResult<Self> {
        let sku: String = x.get_item(0)?.extract()?;
        let kind: String = x.get_item(1)?.extract()?;
        let ts: i64 = x.get_item(2)?.extract()?;
        let g = |i: usize| x.get_item(i);
        Ok(match kind.as_str() {
            "catalog" => ItemIn::Catalog {
                sku, ts, category: g(3)?.extract()?, brand: g(4)?.extract()?, price: g(5)?.extract()?,
                currency: g(6)?.extract()?, attrs: g(7)?.extract()?, min_age: g(8)?.extract()?,
                regions: g(9)?.extract()?, options: g(10)?.extract()?,
            },
            "inventory" => ItemIn::Inventory {
                sku, ts, location: g(3)?.extract()?, on_hand: g(4)?.extract()?,
                reserved: g(5)?.extract()?,
            },
            "price" => ItemIn::Price {
                sku, ts, price: g(3)?.extract()?, list_price: g(4)?.extract()?,
                currency: g(5)?.extract()?,
            },
            _ => ItemIn::Behaviour {
                sku, kind, ts, user: g(3)?.extract()?, event_id: g(4)?.extract()?,
                session: g(5)?.extract()?, qty: g(6)?.extract()?, unit_price: g(7)?.extract()?,
            },
        })
    }

    /// The tuple `item_inputs` makes.
    pub fn to_tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        Ok(match self {
            ItemIn::Behaviour { sku, kind, ts, user, event_id, session, qty, unit_price } =>
                (sku, kind, ts, user, event_id, session, qty, unit_price).into_pyobject(py)?,
            ItemIn::Catalog { sku, ts, category, brand, price, currency, attrs, min_age, regions,
                              options } =>
                PyTuple::new(py, [sku.into_pyobject(py)?.into_any(),
                                  "catalog".into_pyobject(py)?.into_any(),
                                  ts.into_pyobject(py)?.into_any(),
                                  category.into_pyobject(py)?.into_any(),
                                  brand.into_pyobject(py)?.into_any(),
                                  price.into_pyobject(py)?.into_any(),
                                  currency.into_pyobject(py)?.into_any(),
                                  PyTuple::new(py, attrs)?.into_any(),
                                  min_age.into_pyobject(py)?.into_any(),
                                  regions.into_pyobject(py)?.into_any(),
                                  options.into_pyobject(py)?.into_any()])?,
            ItemIn::Inventory { sku, ts, location, on_hand, reserved } =>
                (sku, "inventory", ts, location, on_hand, reserved).into_pyobject(py)?,
            ItemIn::Price { sku, ts, price, list_price, currency } =>
                (sku, "price", ts, price, list_price, currency).into_pyobject(py)?,
        })
    }
}

/// A user step input straight from the events (`features.interactions.user_inputs`):
/// a behaviour event (`UserEvent`) or consent.
#[derive(Clone, Serialize, Deserialize)]
pub enum UserIn {
    Event { user: String, kind: String, ts: i64, event_id: String, session: String,
            lines: Vec<(String, i64, f64)>, order_id: String },
    Consent { user: String, ts: i64, event_id: String, purposes: Vec<String> },
}

impl UserIn {
    pub fn user(&self) -> &str {
        match self {
            UserIn::Event { user, .. } | UserIn::Consent { user, .. } => user,
        }
    }

    /// As `user_inputs` makes it (a `UserEvent` needs its class: `user_event`).
    pub fn to_py<'py>(&self, py: Python<'py>, user_event: &Py<PyAny>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self {
            UserIn::Event { user, kind, ts, event_id, session, lines, order_id } =>
                crate::py::named(py, user_event, (user, kind, ts, event_id, session,
                                                  PyTuple::new(py, lines)?, order_id))?,
            UserIn::Consent { user, ts, event_id, purposes } =>
                (user, "consent", ts, event_id, PyTuple::new(py, purposes)?).into_pyobject(py)?.into_any(),
        })
    }
}


#[pymethods]
impl ItemInBatch {
    /// The inputs as the tuples `item_inputs` makes.
    fn tuples<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        self.items.iter().map(|x| x.to_tuple(py)).collect()
    }

    /// `(bucket start, type, count)` of the inputs that have no user input (catalog,
    /// inventory, price), as `features.input_monitor.kind_counts` counts them.
    fn kind_counts(&self, bucket_ms: i64) -> Vec<(i64, String, u64)> {
        let mut c = std::collections::BTreeMap::<(i64, &str), u64>::new();
        for x in &self.items {
            let (kind, ts) = match x {
                ItemIn::Behaviour { .. } => continue,
                ItemIn::Catalog { ts, .. } => ("catalog", *ts),
                ItemIn::Inventory { ts, .. } => ("inventory", *ts),
                ItemIn::Price { ts, .. } => ("price", *ts),
            };
            *c.entry((bucket_start(ts, bucket_ms), kind)).or_default() += 1;
        }
        c.into_iter().map(|((b, k), n)| (b, k.to_string(), n)).collect()
    }

    /// The inputs' event times, in order (the flow's input clock, `operators.validate`).
    fn times(&self) -> Vec<i64> {
        self.items.iter().map(|x| match x {
            ItemIn::Behaviour { ts, .. } | ItemIn::Catalog { ts, .. }
            | ItemIn::Inventory { ts, .. } | ItemIn::Price { ts, .. } => *ts,
        }).collect()
    }
}

fn bucket_start(ts: i64, bucket_ms: i64) -> i64 {
    let b = bucket_ms.max(1);
    ts - ts.rem_euclid(b)
}

#[pymethods]
impl UserInBatch {
    /// The inputs as `user_inputs` makes them (`user_event`: the `UserEvent` class).
    fn tuples<'py>(&self, py: Python<'py>, user_event: Py<PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        self.items.iter().map(|x| x.to_py(py, &user_event)).collect()
    }

    /// `(bucket start, type, count)` of the inputs (consent as "consent").
    fn kind_counts(&self, bucket_ms: i64) -> Vec<(i64, String, u64)> {
        let mut c = std::collections::BTreeMap::<(i64, &str), u64>::new();
        for x in &self.items {
            let (kind, ts) = match x {
                UserIn::Event { kind, ts, .. } => (kind.as_str(), *ts),
                UserIn::Consent { ts, .. } => ("consent", *ts),
            };
            *c.entry((bucket_start(ts, bucket_ms), kind)).or_default() += 1;
        }
        c.into_iter().map(|((b, k), n)| (b, k.to_string(), n)).collect()
    }

    /// The inputs' event times, in order (the flow's input clock, `operators.validate`).
    fn times(&self) -> Vec<i64> {
        self.items.iter().map(|x| match x {
            UserIn::Event { ts, .. } | UserIn::Consent { ts, .. } => *ts,
        }).collect()
    }
}
