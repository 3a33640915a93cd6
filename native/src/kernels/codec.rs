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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_size() {
        let v: Vec<(String, i64)> = vec![("a".into(), -3), ("bc".into(), 1 << 40)];
        let b = encode(&v).unwrap();
        assert_eq!(size(&v).unwrap() as usize, b.len());
        let back: Vec<(String, i64)> = decode(&b).unwrap();
        assert_eq!(back, v);
        assert!(decode::<Vec<(String, i64)>>(&b[..b.len() - 1]).is_err());
    }
}
