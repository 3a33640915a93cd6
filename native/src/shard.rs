//! A shard of one keyed feature step: the fold state of every entity routed to it, applied
//! batch by batch (the native side of `operators.sharded_fold`).

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// One entity's fold, as `features/*.py` folds: `apply` an input, `rows` of changed views.
pub trait NativeFold {
    type State: Serialize + DeserializeOwned;
    fn new_state(&self) -> Self::State;
    fn apply(&self, py: Python<'_>, st: &mut Self::State, x: &Bound<'_, PyTuple>,
             out: &Bound<'_, PyList>) -> PyResult<()>;
    fn rows(&self, py: Python<'_>, st: &mut Self::State, key: &str, out: &Bound<'_, PyList>)
        -> PyResult<()>;
    fn erased(&self, _st: &Self::State) -> bool {
        false
    }
}

#[derive(Serialize, Deserialize)]
pub struct Shard<S> {
    pub states: HashMap<String, S>,
    pub touched: HashSet<String>,
}

impl<S: Serialize + DeserializeOwned> Shard<S> {
    pub fn new() -> Self {
        Shard { states: HashMap::default(), touched: HashSet::default() }
    }

    /// Apply `items` in order (each a tuple whose first field is the entity key).
    pub fn apply<F: NativeFold<State = S>>(&mut self, fold: &F, py: Python<'_>,
                                           items: &Bound<'_, PyList>, per_event: bool)
                                           -> PyResult<Py<PyList>> {
        let out = PyList::empty(py);
        for item in items.iter() {
            let x = item.cast::<PyTuple>()?;
            let key_obj = x.get_item(0)?;
            let key = key_obj.cast::<PyString>()?.to_str()?;
            if !self.states.contains_key(key) {
                self.states.insert(key.to_owned(), fold.new_state());
            }
            let st = self.states.get_mut(key).expect("just inserted");
            fold.apply(py, st, x, &out)?;
            if fold.erased(st) {
                self.states.remove(key);
                self.touched.remove(key);
                continue;
            }
            if per_event {
                fold.rows(py, st, key, &out)?;
            } else if !self.touched.contains(key) {
                self.touched.insert(key.to_owned());
            }
        }
        Ok(out.unbind())
    }

    /// Rows of every entity changed since the last flush.
    pub fn flush<F: NativeFold<State = S>>(&mut self, fold: &F, py: Python<'_>)
                                           -> PyResult<Py<PyList>> {
        let out = PyList::empty(py);
        let mut keys: Vec<String> = self.touched.drain().collect();
        keys.sort_unstable();
        for k in keys {
            if let Some(st) = self.states.get_mut(&k) {
                fold.rows(py, st, &k, &out)?;
            }
        }
        Ok(out.unbind())
    }

    /// Drop the state of `keys` (idle), returning the rows they still owed the store.
    pub fn evict<F: NativeFold<State = S>>(&mut self, fold: &F, py: Python<'_>, keys: Vec<String>)
                                           -> PyResult<Py<PyList>> {
        let out = PyList::empty(py);
        for k in keys {
            if let Some(mut st) = self.states.remove(&k) {
                if self.touched.remove(&k) {
                    fold.rows(py, &mut st, &k, &out)?;
                }
            }
        }
        Ok(out.unbind())
    }

    pub fn dump(&self) -> PyResult<Vec<u8>> {
        bincode::serialize(self).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
    }

    pub fn load(data: &[u8]) -> PyResult<Self> {
        bincode::deserialize(data).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
    }
}

/// A `#[pyclass]` shard around a `NativeFold`: `apply(items, per_event)`, `flush()`,
/// `evict(keys)`, `dump()`, `load(bytes)`, `len()`, `keys()`.
#[macro_export]
macro_rules! shard_class {
    ($name:ident, $fold:ty, $state:ty) => {
        #[pyclass(module = "bespoke_native")]
        pub struct $name {
            fold: $fold,
            shard: $crate::shard::Shard<$state>,
        }

        #[pymethods]
        impl $name {
            fn apply(&mut self, py: Python<'_>, items: &Bound<'_, pyo3::types::PyList>,
                     per_event: bool) -> PyResult<Py<pyo3::types::PyList>> {
                self.shard.apply(&self.fold, py, items, per_event)
            }
            fn flush(&mut self, py: Python<'_>) -> PyResult<Py<pyo3::types::PyList>> {
                self.shard.flush(&self.fold, py)
            }
            fn evict(&mut self, py: Python<'_>, keys: Vec<String>)
                     -> PyResult<Py<pyo3::types::PyList>> {
                self.shard.evict(&self.fold, py, keys)
            }
            fn dump<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
                Ok(pyo3::types::PyBytes::new(py, &self.shard.dump()?))
            }
            fn load(&mut self, data: &[u8]) -> PyResult<()> {
                self.shard = $crate::shard::Shard::load(data)?;
                Ok(())
            }
            fn keys(&self) -> Vec<String> {
                let mut k: Vec<String> = self.shard.states.keys().cloned().collect();
                k.sort_unstable();
                k
            }
            fn touched(&self) -> usize {
                self.shard.touched.len()
            }
            fn __len__(&self) -> usize {
                self.shard.states.len()
            }
        }
    };
}

/// `operators.sharded_fold.shard_groups` for items keyed by their first field: one
/// `(str(shard), items)` message per shard, in order of first appearance, item order kept.
#[pyfunction]
pub fn shard_groups<'py>(py: Python<'py>, chunks: &Bound<'py, PyList>, shards: u32)
                         -> PyResult<Bound<'py, PyList>> {
    let mut index: HashMap<u32, usize> = HashMap::default();
    let mut groups: Vec<(u32, Bound<'py, PyList>)> = Vec::new();
    for chunk in chunks.iter() {
        for x in chunk.cast::<PyList>()?.iter() {
            let key = x.cast::<PyTuple>()?.get_item(0)?;
            let shard = crc32fast::hash(key.cast::<pyo3::types::PyString>()?.to_str()?.as_bytes())
                % shards;
            match index.get(&shard) {
                Some(&i) => groups[i].1.append(x)?,
                None => {
                    index.insert(shard, groups.len());
                    let l = PyList::empty(py);
                    l.append(x)?;
                    groups.push((shard, l));
                }
            }
        }
    }
    let out = PyList::empty(py);
    for (shard, items) in groups {
        out.append((shard.to_string(), items))?;
    }
    Ok(out)
}
