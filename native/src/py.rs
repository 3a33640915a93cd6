//! Small helpers for building Python objects fast.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::BoundObject;

/// An instance of a tuple subclass (a `NamedTuple` such as `StoreWrite`) holding `args`,
/// made by `tuple.__new__(cls, args)` in C rather than by the class's Python `__new__`.
pub fn named<'py, A>(py: Python<'py>, cls: &Py<PyAny>, args: A) -> PyResult<Bound<'py, PyAny>>
where
    A: IntoPyObject<'py, Target = PyTuple>,
    PyErr: From<A::Error>,
{
    let args: Bound<'py, PyTuple> = args.into_pyobject(py)?.into_bound();
    let outer = PyTuple::new(py, [args])?;
    // SAFETY: tp_new of the built-in tuple type, called with a type object (a subclass of
    // tuple, checked by tuple_new itself) and an owned argument tuple; the result is a new
    // reference or NULL with an exception set.
    unsafe {
        let slot = ffi::PyType_GetSlot(std::ptr::addr_of_mut!(ffi::PyTuple_Type), ffi::Py_tp_new);
        let new: ffi::newfunc = std::mem::transmute(slot);
        let obj = new(cls.as_ptr() as *mut ffi::PyTypeObject, outer.as_ptr(), std::ptr::null_mut());
        Bound::from_owned_ptr_or_err(py, obj)
    }
}
