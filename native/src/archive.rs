//! Python binding of the record archive's journal → Arrow columns conversion
//! (`kernels::archive`), without the GIL; the columns go back as Arrow buffers.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::kernels::archive::{columns, kind, Kind};

/// `(rows, skipped lines, columns)` of the journal text `data`; `spec` lists the columns as
/// `(field, kind)`, kind one of "str", "int", "bool", "json". Each column is
/// `(validity bitmap or None, null count, values, offsets or None)`: int64 values as
/// little-endian bytes, booleans as a bitmap, strings as UTF-8 data with int32 offsets.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn archive_columns<'py>(
    py: Python<'py>,
    data: &[u8],
    spec: Vec<(String, String)>,
) -> PyResult<(
    usize,
    usize,
    Vec<(Option<Bound<'py, PyBytes>>, usize, Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>)>,
)> {
    let spec: Vec<(String, Kind)> =
        spec.into_iter().map(|(n, k)| Ok((n, kind(&k).map_err(PyValueError::new_err)?)))
            .collect::<PyResult<_>>()?;
    let (rows, skipped, cols) =
        py.detach(|| columns(data, &spec)).map_err(PyValueError::new_err)?;
    let out = cols
        .into_iter()
        .map(|c| {
            let valid = (c.nulls > 0).then(|| PyBytes::new(py, &c.valid));
            let (values, offsets) = match c.kind {
                Kind::Str | Kind::Json => {
                    let off: Vec<u8> = c.offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
                    (PyBytes::new(py, &c.data), Some(PyBytes::new(py, &off)))
                }
                Kind::Int => (PyBytes::new(py, &c.data), None),
                Kind::Bool => (PyBytes::new(py, &c.bits), None),
            };
            (valid, c.nulls, values, offsets)
        })
        .collect();
    Ok((rows, skipped, out))
}
