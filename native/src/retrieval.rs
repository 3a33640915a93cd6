//! Python bindings of the candidate retrieval kernels (`kernels::retrieval`): the
//! functions of `features/retrieval.py`; an error becomes `ValueError`, and the caller runs
//! the Python reference instead. `merge_sources` works on the caller's own Python objects.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PySet, PyString, PyTuple};
use rustc_hash::FxHashMap as HashMap;

use crate::kernels::retrieval::{self as kernel, round6};

/// `features.retrieval.neighbours`.
#[pyfunction]
pub fn neighbours(seeds: Vec<String>, encoded: Vec<(String, String)>, limit: usize)
                  -> PyResult<Vec<(String, f64)>> {
    kernel::neighbours(seeds, encoded, limit).map_err(PyValueError::new_err)
}

/// `features.retrieval.similar_keys`.
#[pyfunction]
pub fn similar_keys(key: &str, trail: Vec<String>, keys_of: Vec<String>, k: usize, window: usize)
                    -> Vec<(String, f64)> {
    kernel::similar_keys(key, &trail, &keys_of, k, window)
}

/// `features.retrieval.session_knn`.
#[pyfunction]
pub fn session_knn(neighbours: Vec<(String, f64)>, trails: Vec<String>, limit: usize)
                   -> PyResult<Vec<(String, f64)>> {
    if neighbours.len() != trails.len() {
        return Err(PyValueError::new_err("neighbours and trails differ in length"));
    }
    Ok(kernel::session_knn(&neighbours, &trails, limit))
}

/// `features.retrieval.merged_lists`.
#[pyfunction]
pub fn merged_lists(encoded: Vec<String>, weighted: bool, limit: usize)
                    -> PyResult<Vec<(String, f64)>> {
    kernel::merged_lists(encoded, weighted, limit).map_err(PyValueError::new_err)
}

/// `features.retrieval.merge`: `lists` are (source, source weight, items) in source order,
/// `items` a list or tuple of (sku, weight); `bought` a set of skus.
/// Returns the best `limit` (sku, score) and a dict of the source that found each first.
/// The skus are the caller's own str objects (no copies either way).
#[pyfunction]
pub fn merge_sources<'py>(py: Python<'py>, lists: &Bound<'py, PyList>, bought: &Bound<'py, PySet>,
                          limit: usize) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyDict>)> {
    // (sku, weight, source index) of every entry, the skus not bought
    let mut entries: Vec<(Bound<'py, PyString>, f64, usize)> = Vec::with_capacity(128);
    let mut sources: Vec<Bound<'py, PyAny>> = Vec::with_capacity(lists.len());
    let mut scale: Vec<f64> = Vec::with_capacity(lists.len());
    let check_bought = !bought.is_empty();
    for (src, spec) in lists.iter().enumerate() {
        let spec = spec.cast_into::<PyTuple>()?;
        sources.push(spec.get_item(0)?);
        let source_weight: f64 = spec.get_item(1)?.extract()?;
        let items = spec.get_item(2)?;
        let first = entries.len();
        let mut top = f64::NEG_INFINITY;
        for item in items.try_iter()? {
            let item = item?.cast_into::<PyTuple>()?;
            let w: f64 = item.get_item(1)?.extract()?;
            top = top.max(w);
            let sku = item.get_item(0)?.cast_into::<PyString>()?;
            if check_bought && bought.contains(&sku)? {
                continue;
            }
            entries.push((sku, w, src));
        }
        let top = if entries.len() == first && top == f64::NEG_INFINITY { 1.0 } else { top };
        let top = if top == 0.0 { 1.0 } else { top };
        scale.push(source_weight / top);
    }
    // sku -> (score, source index, position of the entry holding the sku's str object)
    let mut scores: HashMap<&str, (f64, usize, usize)> = HashMap::default();
    for (pos, (sku, w, src)) in entries.iter().enumerate() {
        let slot = scores.entry(sku.to_str()?).or_insert((0.0, *src, pos));
        slot.0 = round6(slot.0 + w * scale[*src]);
    }
    let mut v: Vec<(&str, (f64, usize, usize))> = scores.into_iter().collect();
    v.sort_unstable_by(|a, b| b.1 .0.partial_cmp(&a.1 .0).unwrap_or(std::cmp::Ordering::Equal)
        .then_with(|| a.0.cmp(b.0)));
    v.truncate(limit);
    let best = PyList::empty(py);
    let found = PyDict::new(py);
    for (_, (w, src, pos)) in v {
        let sku = &entries[pos].0;
        best.append((sku, w))?;
        found.set_item(sku, &sources[src])?;
    }
    Ok((best, found))
}

