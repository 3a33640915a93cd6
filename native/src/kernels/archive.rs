//! The record archive's journal → Arrow columns (`connectors/record_archive.py`), without
//! the GIL. A journal holds one decision record per line as orjson wrote it; the archive
//! keeps its scalar fields as they are and its nested fields as their JSON text. The text
//! of a nested field is taken as it stands in the line (a JSON value inside compact JSON
//! is its own compact JSON), so it equals `orjson.dumps(value)` of the Python reference.
//!
//! The columns come back as Arrow buffers (validity bitmap, offsets, data) that pyarrow
//! wraps without copying again. A line that is not JSON (the last line of a killed
//! process) is skipped, like the reference does; a field of an unexpected type raises
//! `ValueError` and the caller runs the reference, which reports it its own way.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::value::RawValue;

#[derive(Clone, Copy)]
pub enum Kind {
    Str,
    Int,
    Bool,
    Json,
}

/// One column being built: validity bits, offsets (strings) and values.
pub struct Column {
    pub kind: Kind,
    pub valid: Vec<u8>,
    pub nulls: usize,
    pub offsets: Vec<i32>,
    pub data: Vec<u8>,
    pub bits: Vec<u8>, // booleans
}

impl Column {
    fn new(kind: Kind) -> Self {
        Column { kind, valid: Vec::new(), nulls: 0, offsets: vec![0], data: Vec::new(), bits: Vec::new() }
    }

    fn set_bit(v: &mut Vec<u8>, i: usize, on: bool) {
        if i / 8 >= v.len() {
            v.push(0);
        }
        if on {
            v[i / 8] |= 1 << (i % 8);
        }
    }

    fn push(&mut self, row: usize, raw: Option<&RawValue>) -> Result<(), String> {
        let text = raw.map(|r| r.get()).filter(|t| *t != "null");
        Self::set_bit(&mut self.valid, row, text.is_some());
        if text.is_none() {
            self.nulls += 1;
        }
        match self.kind {
            Kind::Str => {
                if let Some(t) = text {
                    let s: Cow<str> = serde_json::from_str(t).map_err(|e| e.to_string())?;
                    self.data.extend_from_slice(s.as_bytes());
                }
                self.end_value()?;
            }
            Kind::Json => {
                if let Some(t) = text {
                    self.data.extend_from_slice(t.as_bytes());
                }
                self.end_value()?;
            }
            Kind::Int => {
                let v: i64 = match text {
                    Some(t) => serde_json::from_str(t).map_err(|e| e.to_string())?,
                    None => 0,
                };
                self.data.extend_from_slice(&v.to_le_bytes());
            }
            Kind::Bool => {
                let v: bool = match text {
                    Some(t) => serde_json::from_str(t).map_err(|e| e.to_string())?,
                    None => false,
                };
                Self::set_bit(&mut self.bits, row, v);
            }
        }
        Ok(())
    }

    fn end_value(&mut self) -> Result<(), String> {
        let end = i32::try_from(self.data.len()).map_err(|_| "column over 2 GiB".to_string())?;
        self.offsets.push(end);
        Ok(())
    }
}

pub fn kind(name: &str) -> Result<Kind, String> {
    match name {
        "str" => Ok(Kind::Str),
        "int" => Ok(Kind::Int),
        "bool" => Ok(Kind::Bool),
        "json" => Ok(Kind::Json),
        _ => Err(format!("unknown column kind {name:?}")),
    }
}

/// `(rows, skipped lines, columns)` of the journal text `data`, one column per `spec` entry.
pub fn columns(data: &[u8], spec: &[(String, Kind)]) -> Result<(usize, usize, Vec<Column>), String> {
    let mut cols: Vec<Column> = spec.iter().map(|(_, k)| Column::new(*k)).collect();
    let (mut rows, mut skipped) = (0usize, 0usize);
    for line in data.split(|b| *b == b'\n') {
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let fields: HashMap<Cow<str>, &RawValue> = match serde_json::from_slice(line) {
            Ok(m) => m,
            Err(_) => {
                skipped += 1;
                continue;
            }
        };
        for ((name, _), col) in spec.iter().zip(cols.iter_mut()) {
            col.push(rows, fields.get(name.as_str()).copied())
                .map_err(|e| format!("record {rows}, field {name}: {e}"))?;
        }
        rows += 1;
    }
    Ok((rows, skipped, cols))
}
