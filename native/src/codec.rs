//! The one binary encoding of native state and batches: bincode with variable-length
//! integers (small counts, lengths and timestamps deltas take a byte or a few, not eight).

use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_varint_encoding()
}

pub fn encode<T: Serialize + ?Sized>(v: &T) -> bincode::Result<Vec<u8>> {
    options().serialize(v)
}

pub fn decode<T: DeserializeOwned>(b: &[u8]) -> bincode::Result<T> {
    options().deserialize(b)
}

pub fn size<T: Serialize + ?Sized>(v: &T) -> bincode::Result<u64> {
    options().serialized_size(v)
}
