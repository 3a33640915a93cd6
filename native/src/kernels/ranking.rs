//! The learned ranker's candidate features and scores, as `features/ranking.py` (the
//! reference) computes them, operation for operation, so results are equal to the last bit.

use rustc_hash::FxHashMap as HashMap;

/// Values per candidate (`features.ranking.FEATURES`).
pub const WIDTH: usize = 24;

/// A candidate's own inputs: sku, heuristic score, (popularity, trending, conversion).
pub struct Candidate<'a> {
    pub sku: &'a str,
    pub h: f64,
    pub facts: (f64, f64, f64),
}

/// The user's side: interests, the six sources' scores (covis, trending, new, covis_last, sknn,
/// popular),
/// recent items newest first, cart.
pub struct Context<'a> {
    pub interests: HashMap<&'a str, f64>,
    pub lists: [HashMap<&'a str, f64>; 6],
    pub recent: Vec<&'a str>,
    pub cart: Vec<&'a str>,
}

/// Python's `max(values, default=0.0) or 1.0`.
fn top<I: Iterator<Item = f64>>(values: I) -> f64 {
    let mut m: Option<f64> = None;
    for v in values {
        m = Some(match m {
            Some(x) if v > x => v, // Python's max: a later value replaces only a smaller one
            Some(x) => x,
            None => v,
        });
    }
    match m {
        Some(x) if x != 0.0 => x,
        _ => 1.0,
    }
}

/// Python's `min(x, cap)` (the first argument unless the cap is smaller).
fn cap(x: f64, c: f64) -> f64 {
    if c < x { c } else { x }
}

/// One row per candidate, in order.
pub fn rows(cands: &[Candidate], ctx: &Context) -> Vec<[f64; WIDTH]> {
    let top_int = top(ctx.interests.values().copied());
    let tops: Vec<f64> = ctx.lists.iter().map(|l| top(l.values().copied())).collect();
    let mut pos: HashMap<&str, usize> = HashMap::default();
    for (i, s) in ctx.recent.iter().enumerate() {
        pos.insert(s, i); // a repeated item keeps its last position, as a dict would
    }
    let top_pop = top(cands.iter().map(|c| c.facts.0));
    let [covis, trending, new, last, knn, popular] = &ctx.lists;
    let n_recent = cap(ctx.recent.len() as f64, 10.0) / 10.0;
    cands
        .iter()
        .enumerate()
        .map(|(rank, c)| {
            let w = ctx.interests.get(c.sku).copied();
            let cv_raw = covis.get(c.sku).copied();
            let t = trending.get(c.sku).copied();
            let nw = new.get(c.sku).copied();
            let cl = last.get(c.sku).copied();
            let kn = knn.get(c.sku).copied();
            let pp = popular.get(c.sku).copied();
            let p = pos.get(c.sku).copied();
            let rec = p.map_or(0.0, |p| 1.0 / (1 + p) as f64);
            let cv = cv_raw.map_or(0.0, |v| v / tops[0]);
            let n_sources = (w.is_some() as u32 + cv_raw.is_some() as u32 + t.is_some() as u32
                + nw.is_some() as u32) as f64;
            let (pop, trend, conv) = c.facts;
            [
                c.h,
                1.0 / (1 + rank) as f64,
                w.map_or(0.0, |v| v / top_int),
                cv,
                t.map_or(0.0, |v| v / tops[1]),
                nw.map_or(0.0, |v| v / tops[2]),
                n_sources,
                rec,
                if p == Some(0) { 1.0 } else { 0.0 },
                rec * cv,
                if p.is_none() { cv } else { 0.0 },
                if ctx.cart.contains(&c.sku) { 1.0 } else { 0.0 },
                cl.map_or(0.0, |v| v / tops[3]),
                if p == Some(1) { 1.0 } else { 0.0 },
                if p == Some(2) { 1.0 } else { 0.0 },
                pop / top_pop,
                cap(trend, 10.0) / 10.0,
                cap(conv, 1.0),
                kn.map_or(0.0, |v| v / tops[4]),
                pp.map_or(0.0, |v| v / tops[5]),
                n_recent,
                cv_raw.map_or(0.0, |v| v / (v + 2.0)),
                cl.map_or(0.0, |v| v / (v + 2.0)),
                kn.map_or(0.0, |v| v / (v + 2.0)),
            ]
        })
        .collect()
}

/// `intercept + sum(w * x)` per row, summed left to right from 0 as Python's `sum` does.
pub fn scores(rows: &[[f64; WIDTH]], weights: &[f64; WIDTH], intercept: f64) -> Vec<f64> {
    rows.iter()
        .map(|r| {
            let mut s = 0.0;
            for (w, x) in weights.iter().zip(r.iter()) {
                s += w * x;
            }
            intercept + s
        })
        .collect()
}

/// Adds a hidden layer of ReLU units to `scores` (`agent.ranker.Deep`: `w_in` is
/// `WIDTH` x `hidden`, row-major): per row, each unit's input summed in feature order from
/// its bias, the positive ones times their output weight summed in unit order (the order
/// of `features.ranking.deep_scores`, so the sums are equal to the last bit).
pub fn add_deep(rows: &[[f64; WIDTH]], scores: &mut [f64], hidden: usize, w_in: &[f64],
                bias: &[f64], out: &[f64]) {
    if hidden == 0 {
        return; // no units (and no chunks of zero width)
    }
    let mut a = vec![0.0; hidden];
    for (r, s) in rows.iter().zip(scores.iter_mut()) {
        // unit by unit the same order (feature 0 first), the weights read row by row
        a.copy_from_slice(bias);
        for (x, w_row) in r.iter().zip(w_in.chunks_exact(hidden)) {
            if *x == 0.0 {
                continue; // adds a zero to each unit: the same sums (the weights are finite)
            }
            for (aj, w) in a.iter_mut().zip(w_row) {
                *aj += x * w;
            }
        }
        let mut total = 0.0;
        for (aj, o) in a.iter().zip(out) {
            if *aj > 0.0 {
                total += aj * o;
            }
        }
        *s += total;
    }
}

/// Plain SGD of a logistic regression over `rows`, one after the other
/// (`features.ranking.logreg_sgd`, the same operations in the same order): a zero feature
/// is absent; the log loss's gradient moves the intercept by `intercept_lr * g` and each
/// present weight by `lr * (g * x + l2 * w)`.
#[allow(clippy::too_many_arguments)]
pub fn logreg_sgd(weights: &mut [f64; WIDTH], intercept: &mut f64, rows: &[[f64; WIDTH]],
                  labels: &[bool], lr: f64, l2: f64, intercept_lr: f64, clip: f64) {
    for (r, label) in rows.iter().zip(labels) {
        let mut dot = 0.0;
        for (w, x) in weights.iter().zip(r.iter()) {
            if *x != 0.0 {
                dot += w * x;
            }
        }
        let y = if *label { 1.0 } else { -1.0 };
        let z = (dot + *intercept) * y;
        let g = if z > 18.0 {
            (-z).exp() * -y
        } else if z < -18.0 {
            -y
        } else {
            -y / (z.exp() + 1.0)
        };
        let g = g.max(-clip).min(clip);
        *intercept -= intercept_lr * g;
        for (w, x) in weights.iter_mut().zip(r.iter()) {
            if *x != 0.0 {
                *w -= lr * (g * x + l2 * *w);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map<'a>(kv: &[(&'a str, f64)]) -> HashMap<&'a str, f64> {
        kv.iter().copied().collect()
    }

    #[test]
    fn rows_scale_each_source_to_its_best_and_mark_recent_items() {
        let ctx = Context {
            interests: map(&[("A", 2.0)]),
            lists: [map(&[("A", 4.0), ("B", 2.0)]), map(&[]), map(&[]), map(&[("B", 1.0)]),
                    map(&[("B", 3.0), ("C", 6.0)]), map(&[("A", 8.0), ("B", 2.0)])],
            recent: vec!["B", "X"],
            cart: vec!["A"],
        };
        let cands = [Candidate { sku: "A", h: 1.5, facts: (10.0, 20.0, 0.5) },
                     Candidate { sku: "B", h: 0.5, facts: (5.0, 1.0, 3.0) }];
        let r = rows(&cands, &ctx);
        assert_eq!(r[0][..4], [1.5, 1.0, 1.0, 1.0]);
        assert_eq!((r[0][6], r[0][11], r[0][15], r[0][16], r[0][17]), (2.0, 1.0, 1.0, 1.0, 0.5));
        // B: covis 2/4, the last item seen, covis_last 1/1, popularity 5/10
        assert_eq!((r[1][1], r[1][3], r[1][7], r[1][8], r[1][9]), (0.5, 0.5, 1.0, 1.0, 0.5));
        assert_eq!((r[1][10], r[1][12], r[1][15], r[1][17]), (0.0, 1.0, 0.5, 1.0));
        // session-kNN: B 3/6 (C is not a candidate but the list's best), A none
        assert_eq!((r[0][18], r[1][18]), (0.0, 0.5));
        // popular: A 8/8, B 2/8
        assert_eq!((r[0][19], r[1][19]), (1.0, 0.25));
        // two recent items; unscaled co-visitation 4/6 and 2/4, covis_last B 1/3, sknn B 3/5
        assert_eq!((r[0][20], r[0][21], r[1][21]), (0.2, 4.0 / 6.0, 0.5));
        assert_eq!((r[0][22], r[1][22], r[0][23], r[1][23]), (0.0, 1.0 / 3.0, 0.0, 0.6));
        let mut w = [0.0; WIDTH];
        w[0] = 2.0;
        w[7] = 1.0;
        assert_eq!(scores(&r, &w, -1.0), vec![2.0, 1.0]);
    }

    #[test]
    fn empty_sources_and_zero_maxima_scale_by_one() {
        assert_eq!(top(std::iter::empty()), 1.0);
        assert_eq!(top([0.0, 0.0].into_iter()), 1.0);
        assert_eq!(top([-2.0, -1.0].into_iter()), -1.0);
    }

    #[test]
    fn sgd_moves_present_weights_toward_the_label_and_leaves_absent_ones() {
        let mut w = [0.0; WIDTH];
        w[1] = 1.0;
        let mut b = 0.0;
        let mut row = [0.0; WIDTH];
        row[0] = 1.0;
        // at score 0 the log loss's gradient is -0.5 for a positive
        logreg_sgd(&mut w, &mut b, &[row], &[true], 0.1, 0.0, 0.01, 1e12);
        assert_eq!(w[0], 0.05);
        assert_eq!(w[1], 1.0); // absent from the row: neither read nor decayed
        assert_eq!(b, 0.005);
        logreg_sgd(&mut w, &mut b, &[row, row], &[false, false], 0.1, 0.0, 0.01, 1e12);
        assert!(w[0] < 0.05 && b < 0.005);
    }
}
