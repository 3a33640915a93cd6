//! Pure Rust kernels: no Python types, no PyO3. The bindings (`crate::retrieval`,
//! `crate::archive`) and the fold shards (`crate::user`, `crate::item`, `crate::covis`,
//! which build Python rows directly) call them. `cargo test` covers them without Python.

pub mod archive;
pub mod codec;
pub mod decay;
pub mod ranking;
pub mod retrieval;
pub mod windows;
