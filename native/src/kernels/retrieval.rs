//! Candidate retrieval arithmetic of the decision path, as `features/retrieval.py` (the
//! reference) computes it, in the same order, so results are equal to the last bit. An
//! input the Python functions would read differently (a weight Rust does not parse the way
//! `float()` does) is an error, and the caller runs the Python reference instead.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::decay::round_n;

/// Python's `round(x, 6)`. The common case in one multiplication and one division: when
/// `x * 1e6` is far from a half (its rounding error cannot flip the nearest integer `n`),
/// the result is the double nearest to `n / 10**6`, which an IEEE division of two exact
/// values gives; near a half, the exact decimal path (`round_n`).
pub fn round6(x: f64) -> f64 {
    let y = x * 1e6;
    if y.is_finite() && y.abs() < 1e12 {
        let frac = y.abs().fract();
        if (frac - 0.5).abs() > 1e-3 {
            return y.round() / 1e6;
        }
    }
    round_n(x, 6)
}

/// Python's `float(text)` for the plain decimals our rows hold; anything else is refused.
fn weight(text: &str) -> Result<f64, String> {
    let ok = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    match text.parse::<f64>() {
        Ok(v) if ok => Ok(v),
        _ => Err(format!("unusual weight {text:?}")),
    }
}

/// `_parse_weights`: "sku:w,sku:w" as a dict would hold it (first position, last value).
fn parse_weights(text: &str) -> Result<Vec<(&str, f64)>, String> {
    let mut out: Vec<(&str, f64)> = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (key, w) = part.rsplit_once(':').unwrap_or(("", part));
        let w = weight(w)?;
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = w,
            None => out.push((key, w)),
        }
    }
    Ok(out)
}

/// Best first, ties by sku; values rounded to 6 decimals.
fn best(scores: HashMap<&str, f64>, limit: usize) -> Vec<(String, f64)> {
    let mut v: Vec<(&str, f64)> = scores.into_iter().collect();
    v.sort_unstable_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal)
        .then_with(|| a.0.cmp(b.0)));
    v.truncate(limit);
    v.into_iter().map(|(k, w)| (k.to_owned(), round6(w))).collect()
}

/// `features.retrieval.neighbours`.
pub fn neighbours(seeds: Vec<String>, encoded: Vec<(String, String)>, limit: usize)
                  -> Result<Vec<(String, f64)>, String> {
    let seen: HashSet<&str> = seeds.iter().map(String::as_str).collect();
    let mut scores: HashMap<&str, f64> = HashMap::default();
    for (rank, (vv, vb)) in encoded.iter().enumerate() {
        let damp = 1.0 / (1 + rank) as f64;
        for (text, rel) in [(vv, 1.0), (vb, 2.0)] {
            for (sku, w) in parse_weights(text)? {
                if !seen.contains(sku) {
                    *scores.entry(sku).or_insert(0.0) += damp * rel * w;
                }
            }
        }
    }
    Ok(best(scores, limit))
}

/// `features.retrieval.merged_lists`.
pub fn merged_lists(encoded: Vec<String>, weighted: bool, limit: usize)
                    -> Result<Vec<(String, f64)>, String> {
    let mut scores: HashMap<&str, f64> = HashMap::default();
    for (rank, text) in encoded.iter().enumerate() {
        let entries: Vec<&str> = text.split(',').filter(|e| !e.is_empty()).collect();
        if entries.is_empty() {
            continue;
        }
        let damp = 1.0 / (1 + rank) as f64;
        let top = if weighted {
            weight(entries[0].rsplit_once(':').map_or(entries[0], |(_, w)| w))?
        } else {
            1.0
        };
        let n = entries.len() as f64;
        for (pos, e) in entries.iter().enumerate() {
            let (sku, v) = if weighted {
                let (sku, w) = e.rsplit_once(':').unwrap_or(("", e));
                (sku, if top > 0.0 { weight(w)? / top } else { 0.0 })
            } else {
                (*e, 1.0 - pos as f64 / n)
            };
            let slot = scores.entry(sku).or_insert(0.0);
            let cand = damp * v;
            if cand > *slot {
                *slot = cand;
            }
        }
    }
    Ok(best(scores, limit))
}

/// `features.retrieval.similar_keys`: the `k` keys most like `key`, best first, ties by key.
pub fn similar_keys(key: &str, trail: &[String], keys_of: &[String], k: usize, window: usize)
                    -> Vec<(String, f64)> {
    let n = trail.len().min(window);
    let mut sim: HashMap<&str, f64> = HashMap::default();
    for (pos, text) in keys_of.iter().take(n).enumerate() {
        let w = (n - pos) as f64 / n as f64;
        for other in text.split(',') {
            if !other.is_empty() && other != key {
                *sim.entry(other).or_insert(0.0) += w;
            }
        }
    }
    let mut v: Vec<(&str, f64)> = sim.into_iter().collect();
    v.sort_unstable_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal)
        .then_with(|| a.0.cmp(b.0)));
    v.truncate(k);
    v.into_iter().map(|(o, w)| (o.to_owned(), w)).collect()
}

/// `features.retrieval.session_knn`: the items of the neighbours' trails, each gaining the
/// neighbour's similarity (summed in the neighbours' order); the best `limit`, rounded.
pub fn session_knn(neighbours: &[(String, f64)], trails: &[String], limit: usize)
                   -> Vec<(String, f64)> {
    let mut score: HashMap<&str, f64> = HashMap::default();
    for ((_, w), text) in neighbours.iter().zip(trails.iter()) {
        for s in text.split(',') {
            if !s.is_empty() {
                *score.entry(s).or_insert(0.0) += w;
            }
        }
    }
    best(score, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_skip_the_seeds_and_weigh_buys_double_and_older_seeds_less() {
        let got = neighbours(
            vec!["A".into(), "B".into()],
            vec![("B:1.0,C:0.5".into(), "D:0.5".into()), ("C:1.0".into(), String::new())],
            10,
        )
        .unwrap();
        // C: 0.5 (first seed) + 1.0 / 2 (second seed) = 1.0; D: 2 * 0.5 = 1.0; ties by sku
        assert_eq!(got, vec![("C".to_owned(), 1.0), ("D".to_owned(), 1.0)]);
    }

    #[test]
    fn session_knn_weighs_neighbours_by_the_recency_of_shared_items() {
        let trail = vec!["A".to_owned(), "B".to_owned()];
        let nbs = similar_keys("me", &trail, &["u1,u2,me".into(), "u2".into()], 5, 10);
        assert_eq!(nbs, vec![("u2".to_owned(), 1.5), ("u1".to_owned(), 1.0)]);
        let got = session_knn(&nbs, &["B,C".into(), "A,D".into()], 3);
        assert_eq!(got, vec![("B".to_owned(), 1.5), ("C".to_owned(), 1.5), ("A".to_owned(), 1.0)]);
    }

    #[test]
    fn merged_lists_scale_to_the_top_and_refuse_odd_weights() {
        let got = merged_lists(vec!["X:4,Y:2".into()], true, 10).unwrap();
        assert_eq!(got, vec![("X".to_owned(), 1.0), ("Y".to_owned(), 0.5)]);
        assert!(merged_lists(vec!["X:nan".into()], true, 10).is_err());
        assert_eq!(round6(0.1234567), 0.123457);
    }
}
