//! Python binding of the ranker's kernel (`kernels::ranking`): `features.ranking.rows` and
//! scores in one call. An input of another shape is a `ValueError`, and the caller runs
//! the Python reference instead.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use rustc_hash::FxHashMap as HashMap;

use crate::kernels::ranking::{self as kernel, Candidate, Context, WIDTH};

/// The ranker's hidden layer: (units, input weights row-major, biases, output weights).
type DeepLayer = (usize, Vec<f64>, Vec<f64>, Vec<f64>);

const SOURCES: [&str; 6] = ["covis", "trending", "new", "covis_last", "sknn", "popular"];

/// `features.ranking.rows` (and, with `weights`, their scores): `ranked` (sku, score)
/// pairs, `interests` and each of `lists` a dict sku -> score, `recent` and `cart` skus,
/// `facts` (popularity, trending, conversion) per candidate or None; `deep` (hidden,
/// w_in, bias, out) adds the ranker's ReLU layer to the scores.
#[pyfunction]
#[pyo3(signature = (ranked, interests, lists, recent, cart, facts=None, weights=None, intercept=0.0, deep=None))]
#[allow(clippy::too_many_arguments)]
pub fn ranker_rows<'py>(py: Python<'py>, ranked: &Bound<'py, PyList>,
                        interests: &Bound<'py, PyDict>, lists: &Bound<'py, PyDict>,
                        recent: &Bound<'py, PyAny>, cart: &Bound<'py, PyAny>,
                        facts: Option<&Bound<'py, PyList>>, weights: Option<Vec<f64>>,
                        intercept: f64, deep: Option<DeepLayer>)
                        -> PyResult<(Bound<'py, PyList>, Option<Vec<f64>>)> {
    // the skus stay the caller's str objects: the kernel borrows their UTF-8
    let mut ranked_in: Vec<(Bound<'py, PyString>, f64)> = Vec::with_capacity(ranked.len());
    for item in ranked.iter() {
        let t = item.cast_into::<PyTuple>()?;
        ranked_in.push((t.get_item(0)?.cast_into::<PyString>()?, t.get_item(1)?.extract()?));
    }
    let fact_rows: Vec<(f64, f64, f64)> = match facts {
        Some(f) => f.extract()?,
        None => vec![(0.0, 0.0, 0.0); ranked_in.len()],
    };
    if fact_rows.len() != ranked_in.len() {
        return Err(PyValueError::new_err("facts and candidates differ in length"));
    }
    fn entries<'py>(d: &Bound<'py, PyDict>) -> PyResult<Vec<(Bound<'py, PyString>, f64)>> {
        d.iter().map(|(k, v)| Ok((k.cast_into::<PyString>()?, v.extract::<f64>()?))).collect()
    }
    fn strs<'py>(seq: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyString>>> {
        seq.try_iter()?.map(|x| Ok(x?.cast_into::<PyString>()?)).collect()
    }
    let interests_in = entries(interests)?;
    let mut lists_in: Vec<Vec<(Bound<'py, PyString>, f64)>> = Vec::with_capacity(SOURCES.len());
    for src in SOURCES {
        lists_in.push(match lists.get_item(src)? {
            Some(d) => entries(&d.cast_into::<PyDict>()?)?,
            None => Vec::new(),
        });
    }
    let recent_in = strs(recent)?;
    let cart_in = strs(cart)?;
    fn as_map<'a>(v: &'a [(Bound<'_, PyString>, f64)]) -> PyResult<HashMap<&'a str, f64>> {
        v.iter().map(|(k, w)| Ok((k.to_str()?, *w))).collect()
    }
    let ctx = Context {
        interests: as_map(&interests_in)?,
        lists: [as_map(&lists_in[0])?, as_map(&lists_in[1])?, as_map(&lists_in[2])?,
                as_map(&lists_in[3])?, as_map(&lists_in[4])?, as_map(&lists_in[5])?],
        recent: recent_in.iter().map(|s| s.to_str()).collect::<PyResult<_>>()?,
        cart: cart_in.iter().map(|s| s.to_str()).collect::<PyResult<_>>()?,
    };
    let cands: Vec<Candidate> = ranked_in.iter().zip(fact_rows.iter())
        .map(|((s, h), f)| Ok(Candidate { sku: s.to_str()?, h: *h, facts: *f }))
        .collect::<PyResult<_>>()?;
    let rows = kernel::rows(&cands, &ctx);
    let scores = match weights {
        Some(w) => {
            let w: [f64; WIDTH] = w.try_into()
                .map_err(|_| PyValueError::new_err("weights of another width"))?;
            let mut sc = kernel::scores(&rows, &w, intercept);
            if let Some((hidden, w_in, bias, out)) = deep {
                if w_in.len() != WIDTH * hidden || bias.len() != hidden || out.len() != hidden {
                    return Err(PyValueError::new_err("deep part of another shape"));
                }
                kernel::add_deep(&rows, &mut sc, hidden, &w_in, &bias, &out);
            }
            Some(sc)
        }
        None => None,
    };
    let out = PyList::empty(py);
    for r in &rows {
        out.append(PyTuple::new(py, r.iter())?)?;
    }
    Ok((out, scores))
}

/// `features.ranking.logreg_sgd`: the weights (`WIDTH` of them) and intercept after plain
/// SGD over `rows` (each `WIDTH` values) with `labels`.
#[pyfunction]
#[pyo3(signature = (weights, intercept, rows, labels, lr, l2, intercept_lr=0.01, clip=1e12))]
#[allow(clippy::too_many_arguments)]
pub fn logreg_sgd(weights: Vec<f64>, intercept: f64, rows: Vec<Vec<f64>>, labels: Vec<bool>,
                  lr: f64, l2: f64, intercept_lr: f64, clip: f64) -> PyResult<(Vec<f64>, f64)> {
    let mut w: [f64; WIDTH] = weights.try_into()
        .map_err(|_| PyValueError::new_err("weights of another width"))?;
    if rows.len() != labels.len() {
        return Err(PyValueError::new_err("rows and labels differ in length"));
    }
    let rows: Vec<[f64; WIDTH]> = rows.into_iter()
        .map(|r| r.try_into().map_err(|_| PyValueError::new_err("a row of another width")))
        .collect::<PyResult<_>>()?;
    let mut b = intercept;
    kernel::logreg_sgd(&mut w, &mut b, &rows, &labels, lr, l2, intercept_lr, clip);
    Ok((w.to_vec(), b))
}
