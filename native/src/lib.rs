//! Bespoke's native fold kernels: the feature folds of `features/`, in Rust, each behind a
//! shard object that `operators.sharded_fold` drives batch by batch. The Python folds stay
//! the reference: tests feed both the same inputs and compare every output. The candidate
//! retrieval arithmetic of the decision path (`features/retrieval.py`) is here too, and
//! the record archive's journal-to-columns conversion (`connectors/record_archive.py`).

use pyo3::prelude::*;

pub mod archive;
pub mod batch;
pub mod covis;
pub mod ingest;
pub mod item;
pub mod kernels;
pub mod py;
pub mod ranking;
pub mod retrieval;
pub mod shard;
pub mod user;

#[pymodule]
fn bespoke_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<user::UserShard>()?;
    m.add_class::<covis::CovisShard>()?;
    m.add_class::<item::ItemShard>()?;
    m.add_class::<batch::PairBatch>()?;
    m.add_class::<batch::HintBatch>()?;
    m.add_class::<batch::ItemInBatch>()?;
    m.add_class::<batch::UserInBatch>()?;
    m.add_function(wrap_pyfunction!(shard::shard_groups, m)?)?;
    m.add_function(wrap_pyfunction!(shard::entity_keys, m)?)?;
    m.add_function(wrap_pyfunction!(ingest::ingest, m)?)?;
    m.add_function(wrap_pyfunction!(retrieval::neighbours, m)?)?;
    m.add_function(wrap_pyfunction!(retrieval::merged_lists, m)?)?;
    m.add_function(wrap_pyfunction!(retrieval::merge_sources, m)?)?;
    m.add_function(wrap_pyfunction!(retrieval::similar_keys, m)?)?;
    m.add_function(wrap_pyfunction!(retrieval::session_knn, m)?)?;
    m.add_function(wrap_pyfunction!(ranking::ranker_rows, m)?)?;
    m.add_function(wrap_pyfunction!(ranking::logreg_sgd, m)?)?;
    m.add_function(wrap_pyfunction!(archive::archive_columns, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
