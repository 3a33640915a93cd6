//! A shard of one keyed feature step: the fold state of every entity routed to it, applied
//! batch by batch (the native side of `operators.sharded_fold`).

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::batch::{Hint, HintBatch, ItemIn, ItemInBatch, Pair, PairBatch, Side, UserIn, UserInBatch};

/// One entity's fold, as `features/*.py` folds: `apply` an input, `rows` of changed views.
pub trait NativeFold {
    type State: Serialize + DeserializeOwned;
    fn new_state(&self) -> Self::State;
    fn apply(&self, py: Python<'_>, st: &mut Self::State, x: &Bound<'_, PyTuple>,
             out: &Bound<'_, PyList>, side: &mut Side) -> PyResult<()>;
    /// A co-visitation pair of a `PairBatch` (keyed by `p.a`).
    fn apply_pair(&self, _st: &mut Self::State, _p: &Pair) -> PyResult<()> {
        Err(pyo3::exceptions::PyTypeError::new_err("this fold takes no pairs"))
    }
    /// An item input of an `ItemInBatch` (keyed by its sku).
    fn apply_item(&self, _py: Python<'_>, _st: &mut Self::State, _x: &ItemIn,
                  _out: &Bound<'_, PyList>, _side: &mut Side) -> PyResult<()> {
        Err(pyo3::exceptions::PyTypeError::new_err("this fold takes no item inputs"))
    }
    /// A user input of a `UserInBatch` (keyed by its user).
    fn apply_user(&self, _py: Python<'_>, _st: &mut Self::State, _x: &UserIn,
                  _out: &Bound<'_, PyList>, _side: &mut Side) -> PyResult<()> {
        Err(pyo3::exceptions::PyTypeError::new_err("this fold takes no user inputs"))
    }
    /// A hint of a `HintBatch` (keyed by `h.user`).
    fn apply_hint(&self, _st: &mut Self::State, _h: &Hint) -> PyResult<()> {
        Err(pyo3::exceptions::PyTypeError::new_err("this fold takes no hints"))
    }
    fn rows(&self, py: Python<'_>, st: &mut Self::State, key: &str, out: &Bound<'_, PyList>)
        -> PyResult<()>;
    fn erased(&self, _st: &Self::State) -> bool {
        false
    }
    /// Mark every view that holds data as changed (a resumed shard re-fills a store that
    /// did not survive the restart); whether there is anything to write.
    fn touch(&self, _st: &mut Self::State) -> bool {
        false
    }
}

#[derive(Serialize, Deserialize)]
pub struct Shard<S> {
    pub states: HashMap<String, S>,
    pub touched: HashSet<String>,
}

impl<S: Serialize + DeserializeOwned> Default for Shard<S> {
    fn default() -> Self {
        Self::new()
    }
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
        let mut side = Side::default();
        // the hints of this call, from every upstream batch, in event-time order: they come
        // from several shards of the item step, in an order that depends on batching, and a
        // bounded fold (the user's affinities) must see them in an order that does not
        let mut hints: Vec<Hint> = Vec::new();
        let mut n_hint_batches = 0;
        for item in items.iter() {
            if let Ok(batch) = item.cast::<HintBatch>() {
                hints.extend(batch.borrow().items.iter().cloned());
                n_hint_batches += 1;
            }
        }
        if n_hint_batches > 1 {
            hints.sort_by(|a, b| (a.ts, &a.event_id, &a.user).cmp(&(b.ts, &b.event_id, &b.user)));
        }
        let mut hints = Some(hints);
        for item in items.iter() {
            if let Ok(batch) = item.cast::<PairBatch>() {
                for p in &batch.borrow().items {
                    let st = self.state(fold, &p.a);
                    fold.apply_pair(st, p)?;
                    self.done(fold, py, &p.a, per_event, &out)?;
                }
                continue;
            }
            if let Ok(batch) = item.cast::<ItemInBatch>() {
                for x in &batch.borrow().items {
                    let st = self.state(fold, x.sku());
                    fold.apply_item(py, st, x, &out, &mut side)?;
                    self.done(fold, py, x.sku(), per_event, &out)?;
                }
                continue;
            }
            if let Ok(batch) = item.cast::<UserInBatch>() {
                for x in &batch.borrow().items {
                    let st = self.state(fold, x.user());
                    fold.apply_user(py, st, x, &out, &mut side)?;
                    self.done(fold, py, x.user(), per_event, &out)?;
                }
                continue;
            }
            if item.cast::<HintBatch>().is_ok() {
                for h in hints.take().unwrap_or_default().iter() {  // all, at the first batch
                    let st = self.state(fold, &h.user);
                    fold.apply_hint(st, h)?;
                    self.done(fold, py, &h.user, per_event, &out)?;
                }
                continue;
            }
            let x = item.cast::<PyTuple>()?;
            let key_obj = x.get_item(0)?;
            let key = key_obj.cast::<PyString>()?.to_str()?;
            let st = self.state(fold, key);
            fold.apply(py, st, x, &out, &mut side)?;
            if fold.erased(st) {
                self.states.remove(key);
                self.touched.remove(key);
                continue;
            }
            self.done(fold, py, key, per_event, &out)?;
        }
        if !side.pairs.is_empty() {
            out.append(Bound::new(py, PairBatch { items: side.pairs })?)?;
        }
        if !side.hints.is_empty() {
            out.append(Bound::new(py, HintBatch { items: side.hints })?)?;
        }
        Ok(out.unbind())
    }

    fn state<F: NativeFold<State = S>>(&mut self, fold: &F, key: &str) -> &mut S {
        if !self.states.contains_key(key) {
            self.states.insert(key.to_owned(), fold.new_state());
        }
        self.states.get_mut(key).expect("just inserted")
    }

    /// After a batch record: its rows now (per event), or mark the entity for the flush.
    fn done<F: NativeFold<State = S>>(&mut self, fold: &F, py: Python<'_>, key: &str,
                                      per_event: bool, out: &Bound<'_, PyList>) -> PyResult<()> {
        if per_event {
            let st = self.states.get_mut(key).expect("applied");
            fold.rows(py, st, key, out)?;
        } else if !self.touched.contains(key) {
            self.touched.insert(key.to_owned());
        }
        Ok(())
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

    /// `NativeFold::touch` for every entity: the next flush writes their rows again.
    pub fn touch_all<F: NativeFold<State = S>>(&mut self, fold: &F) {
        for (k, st) in self.states.iter_mut() {
            if fold.touch(st) {
                self.touched.insert(k.clone());
            }
        }
    }

    pub fn dump(&self) -> PyResult<Vec<u8>> {
        crate::kernels::codec::encode(self).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
    }

    pub fn load(data: &[u8]) -> PyResult<Self> {
        crate::kernels::codec::decode(data).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
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
            /// Snapshot bytes (bincode) of each entity's state, as recovery stores them.
            fn state_sizes(&self) -> PyResult<Vec<u64>> {
                self.shard.states.values()
                    .map(|st| $crate::kernels::codec::size(st)
                        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string())))
                    .collect()
            }
            fn touched(&self) -> usize {
                self.shard.touched.len()
            }
            fn touch_all(&mut self) {
                self.shard.touch_all(&self.fold)
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
            // a batch has one consumer, this step: its records move, not copied
            if let Ok(b) = x.cast::<PairBatch>() {
                let items = std::mem::take(&mut b.borrow_mut().items);
                regroup(&mut index, &mut groups, items, shards, |p| &p.a,
                        |items| Ok(Bound::new(py, PairBatch { items })?.into_any()))?;
                continue;
            }
            if let Ok(b) = x.cast::<HintBatch>() {
                let items = std::mem::take(&mut b.borrow_mut().items);
                regroup(&mut index, &mut groups, items, shards, |h| &h.user,
                        |items| Ok(Bound::new(py, HintBatch { items })?.into_any()))?;
                continue;
            }
            if let Ok(b) = x.cast::<ItemInBatch>() {
                let items = std::mem::take(&mut b.borrow_mut().items);
                regroup(&mut index, &mut groups, items, shards, |i| i.sku(),
                        |items| Ok(Bound::new(py, ItemInBatch { items })?.into_any()))?;
                continue;
            }
            if let Ok(b) = x.cast::<UserInBatch>() {
                let items = std::mem::take(&mut b.borrow_mut().items);
                regroup(&mut index, &mut groups, items, shards, |u| u.user(),
                        |items| Ok(Bound::new(py, UserInBatch { items })?.into_any()))?;
                continue;
            }
            let key = x.cast::<PyTuple>()?.get_item(0)?;
            let shard = crc32fast::hash(key.cast::<pyo3::types::PyString>()?.to_str()?.as_bytes())
                % shards;
            push(py, &mut index, &mut groups, shard, x)?;
        }
    }
    let out = PyList::empty(py);
    for (shard, items) in groups {
        out.append((shard.to_string(), items))?;
    }
    Ok(out)
}

fn push<'py>(py: Python<'py>, index: &mut HashMap<u32, usize>, groups: &mut Vec<(u32, Bound<'py, PyList>)>,
             shard: u32, x: Bound<'py, PyAny>) -> PyResult<()> {
    match index.get(&shard) {
        Some(&i) => groups[i].1.append(x)?,
        None => {
            index.insert(shard, groups.len());
            let l = PyList::empty(py);
            l.append(x)?;
            groups.push((shard, l));
        }
    }
    Ok(())
}

/// Split a batch's records by shard (crc32 of `key`) into one new batch per shard (`wrap`),
/// appended to that shard's group.
fn regroup<'py, T>(index: &mut HashMap<u32, usize>, groups: &mut Vec<(u32, Bound<'py, PyList>)>,
                   records: Vec<T>, shards: u32, key: impl Fn(&T) -> &str,
                   wrap: impl Fn(Vec<T>) -> PyResult<Bound<'py, PyAny>>) -> PyResult<()> {
    let mut split: HashMap<u32, Vec<T>> = HashMap::default();
    for r in records {
        split.entry(crc32fast::hash(key(&r).as_bytes()) % shards).or_default().push(r);
    }
    let mut split: Vec<(u32, Vec<T>)> = split.into_iter().collect();
    split.sort_unstable_by_key(|(s, _)| *s);
    for (shard, records) in split {
        let batch = wrap(records)?;
        push(batch.py(), index, groups, shard, batch)?;
    }
    Ok(())
}

/// The entity key of every record in `items` (tuples keyed by their first field, and the
/// records inside pair, hint and input batches), in order.
#[pyfunction]
pub fn entity_keys(items: &Bound<'_, PyList>) -> PyResult<Vec<String>> {
    let mut keys = Vec::with_capacity(items.len());
    for x in items.iter() {
        if let Ok(b) = x.cast::<PairBatch>() {
            keys.extend(b.borrow().items.iter().map(|p| p.a.clone()));
        } else if let Ok(b) = x.cast::<HintBatch>() {
            keys.extend(b.borrow().items.iter().map(|h| h.user.clone()));
        } else if let Ok(b) = x.cast::<ItemInBatch>() {
            keys.extend(b.borrow().items.iter().map(|i| i.sku().to_owned()));
        } else if let Ok(b) = x.cast::<UserInBatch>() {
            keys.extend(b.borrow().items.iter().map(|u| u.user().to_owned()));
        } else {
            keys.push(x.cast::<PyTuple>()?.get_item(0)?.extract()?);
        }
    }
    Ok(keys)
}
