//! int8 storage of the Embedding table: one `i8` per value and one `f32` scale per row.
//!
//! A text model is mostly its Embedding `[V][E]`; stored as int8 it takes a quarter of the
//! flash (`V·E + 4·V` bytes instead of `4·V·E`). Only the storage changes: the lookup turns a
//! row back into `f32`s and every other computation stays `f32`.
//!
//! **Quantisation** (host, at export) is symmetric, per row: `scale = max|row| / 127` (an `f32`
//! division) and `q = round_half_even(x / scale)` clamped to `-127..=127`; an all-zero row has
//! scale 0 and all `q = 0`. **Dequantisation** is exactly one `f32` multiply,
//! `q as f32 * scale` ([`dequantize`]): `q as f32` is exact, so the product is rounded once and
//! gives the same bits on every IEEE-754 target — the host's exact path (which dequantises the
//! whole table when it reads the file) and a device (which dequantises one row per lookup)
//! compute the same inputs, and so the same outputs, bit for bit.
//!
//! The stored table is [`Int8Embedding`], read in place from the bytes of a `.tlm` section
//! ([`format::TAG_EMBEDDING_I8`](crate::format::TAG_EMBEDDING_I8)): `[V]` little-endian `f32`
//! scales, then `[V][E]` `i8` values, row-major. No alignment is needed.
//!
//! ```
//! use tinylstm::quant::{dequantize, quantize_row};
//! let row = [0.5f32, -0.2, 0.0, 0.127];
//! let mut q = [0i8; 4];
//! let scale = quantize_row(&row, &mut q);
//! assert_eq!(scale, 0.5 / 127.0);
//! assert_eq!(q, [127, -51, 0, 32]); // -50.8 → -51, 32.258 → 32
//! for (&x, &v) in row.iter().zip(&q) {
//!     assert!((dequantize(v, scale) - x).abs() <= scale / 2.0 + f32::EPSILON);
//! }
//! ```

/// Largest magnitude of a quantised value (symmetric range `-127..=127`).
pub const Q_MAX: i8 = 127;

/// The value `q · scale` of a stored int8 entry: one `f32` multiply, rounded once.
#[inline(always)]
pub fn dequantize(q: i8, scale: f32) -> f32 {
    q as f32 * scale
}

/// Rounds `y` to the nearest integer, ties to even, for `|y| < 2^23` (exact there: the
/// fraction `y − trunc(y)` of such an `f32` is exact).
fn round_half_even(y: f32) -> f32 {
    let t = y as i32 as f32; // truncation toward zero (saturating cast, never UB)
    let frac = y - t;
    let away = if y < 0.0 { -1.0 } else { 1.0 };
    if frac.abs() > 0.5 {
        t + away
    } else if frac.abs() == 0.5 {
        if (t as i32) % 2 == 0 {
            t
        } else {
            t + away
        }
    } else {
        t
    }
}

/// The scale of a row `[E]`: `max|x| / 127` (0 for an all-zero row). `NaN`s are ignored by the
/// maximum; the writer refuses non-finite parameters before calling this.
pub fn row_scale(row: &[f32]) -> f32 {
    let max = row.iter().fold(0.0f32, |m, &x| if x.abs() > m { x.abs() } else { m });
    max / Q_MAX as f32
}

/// The stored value of `x` in a row of scale `scale`: `round_half_even(x / scale)` clamped to
/// `-127..=127`, or 0 when the scale is 0.
pub fn quantize(x: f32, scale: f32) -> i8 {
    if scale == 0.0 {
        return 0;
    }
    let q = round_half_even(x / scale);
    q.clamp(-(Q_MAX as f32), Q_MAX as f32) as i8
}

/// Quantises one row `row [E]` into `q [E]` (same length) and returns its scale.
///
/// # Panics
/// If `q` is shorter than `row` (a caller bug).
pub fn quantize_row(row: &[f32], q: &mut [i8]) -> f32 {
    let scale = row_scale(row);
    for (d, &x) in q[..row.len()].iter_mut().zip(row) {
        *d = quantize(x, scale);
    }
    scale
}

/// Bytes of a stored table `[V][E]`: `4·V` of scales and `V·E` of values (`None` on overflow).
pub const fn table_len(vocab: usize, embed: usize) -> Option<usize> {
    match (vocab.checked_mul(4), vocab.checked_mul(embed)) {
        (Some(s), Some(v)) => s.checked_add(v),
        _ => None,
    }
}

/// An int8 Embedding table `[V][E]` with per-row scales, borrowed from the bytes of its
/// `.tlm` section (see the [module docs](self) for the layout).
#[derive(Clone, Copy, Debug)]
pub struct Int8Embedding<'a> {
    vocab: usize,
    embed: usize,
    scales: &'a [u8],
    values: &'a [u8],
}

impl<'a> Int8Embedding<'a> {
    /// The table `[vocab][embed]` stored in `bytes`, which must be exactly
    /// [`table_len`]`(vocab, embed)` long; `None` otherwise.
    pub fn new(bytes: &'a [u8], vocab: usize, embed: usize) -> Option<Self> {
        if Some(bytes.len()) != table_len(vocab, embed) {
            return None;
        }
        let (scales, values) = bytes.split_at(vocab * 4);
        Some(Int8Embedding { vocab, embed, scales, values })
    }

    /// Rows `V`.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Columns `E`.
    pub fn embed(&self) -> usize {
        self.embed
    }

    /// The scale of row `id` (`id < V`).
    ///
    /// # Panics
    /// If `id >= V` (a caller bug; model functions check ids first).
    pub fn scale(&self, id: usize) -> f32 {
        let b = &self.scales[id * 4..id * 4 + 4];
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The stored values of row `id`, `[E]`.
    ///
    /// # Panics
    /// If `id >= V`.
    pub fn row(&self, id: usize) -> impl Iterator<Item = i8> + 'a {
        self.values[id * self.embed..(id + 1) * self.embed].iter().map(|&b| b as i8)
    }

    /// Writes the dequantised row `id` into `dst [E]` ([`dequantize`] of each value).
    ///
    /// # Panics
    /// If `id >= V` or `dst.len() != E`.
    #[inline]
    pub fn dequantize_row(&self, id: usize, dst: &mut [f32]) {
        assert_eq!(dst.len(), self.embed, "row buffer");
        let scale = self.scale(id);
        for (d, q) in dst.iter_mut().zip(self.row(id)) {
            *d = dequantize(q, scale);
        }
    }

    /// Index of the first row whose scale is not a number `>= 0` with `128 · scale` finite, if
    /// any (a file with one is refused by the reader, so every dequantised value is finite).
    pub fn first_bad_scale(&self) -> Option<usize> {
        (0..self.vocab).find(|&i| {
            let s = self.scale(i);
            !((s * 128.0).is_finite() && s >= 0.0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_matches_std_ties_even() {
        let mut y = -130.0f32;
        while y <= 130.0 {
            assert_eq!(round_half_even(y), y.round_ties_even(), "{y}");
            y += 0.125;
        }
        for y in [0.49999997f32, -0.49999997, 2.5, -2.5, 3.5, -3.5, 126.5, -126.5, 1e-30] {
            assert_eq!(round_half_even(y), y.round_ties_even(), "{y}");
        }
    }

    /// The scalar reference of the rule in the module docs, in f64 where the rule allows it.
    fn reference(row: &[f32]) -> (f32, Vec<i8>) {
        let max = row.iter().map(|x| x.abs()).fold(0.0f32, f32::max);
        let scale = max / 127.0;
        let q = row
            .iter()
            .map(|&x| {
                if scale == 0.0 {
                    0
                } else {
                    (x / scale).round_ties_even().clamp(-127.0, 127.0) as i8
                }
            })
            .collect();
        (scale, q)
    }

    #[test]
    fn quantize_row_matches_the_reference_and_error_is_at_most_half_a_step() {
        let mut seed = 0x1234_5678u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed as f32 / u32::MAX as f32 - 0.5) * 0.2
        };
        for e in [1usize, 3, 7, 8, 64, 65] {
            for _ in 0..50 {
                let row: Vec<f32> = (0..e).map(|_| next()).collect();
                let mut q = vec![0i8; e];
                let scale = quantize_row(&row, &mut q);
                let (rs, rq) = reference(&row);
                assert_eq!(scale.to_bits(), rs.to_bits());
                assert_eq!(q, rq);
                // |x − q·s| ≤ s/2 up to the two roundings of x/s and q·s (a few ulps of x).
                for (&x, &v) in row.iter().zip(&q) {
                    let err = (x - dequantize(v, scale)).abs();
                    assert!(err <= scale * 0.5 + 4.0 * f32::EPSILON * x.abs(), "{x} {v} {scale}");
                }
                assert!(q.iter().any(|v| v.unsigned_abs() == 127) || scale == 0.0);
            }
        }
        let mut q = [9i8; 3];
        assert_eq!(quantize_row(&[0.0, -0.0, 0.0], &mut q), 0.0);
        assert_eq!(q, [0, 0, 0]);
    }

    #[test]
    fn dequantize_is_one_rounded_multiply() {
        // Against an f64 product rounded once to f32 (exact: i8·f32 fits f64's mantissa).
        for q in i8::MIN..=i8::MAX {
            for s in [0.0f32, 1e-3, 0.0123, 3.3e-5, 7.77e-8, 1.0 / 127.0] {
                let want = (q as f64 * s as f64) as f32;
                assert_eq!(dequantize(q, s).to_bits(), want.to_bits(), "{q} {s}");
            }
        }
    }

    #[test]
    fn table_reads_scales_and_rows_in_place() {
        // V = 2, E = 3: scales 0.5 and 0.25, rows [1, -2, 127] and [-127, 0, 5].
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0.5f32.to_le_bytes());
        bytes.extend_from_slice(&0.25f32.to_le_bytes());
        bytes.extend_from_slice(&[1, (-2i8) as u8, 127, (-127i8) as u8, 0, 5]);
        let t = Int8Embedding::new(&bytes, 2, 3).unwrap();
        let mut row = [0.0f32; 3];
        t.dequantize_row(0, &mut row);
        assert_eq!(row, [0.5, -1.0, 63.5]);
        t.dequantize_row(1, &mut row);
        assert_eq!(row, [-31.75, 0.0, 1.25]);
        assert_eq!(t.first_bad_scale(), None);
        assert!(Int8Embedding::new(&bytes[1..], 2, 3).is_none());
        bytes[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
        assert_eq!(Int8Embedding::new(&bytes, 2, 3).unwrap().first_bad_scale(), Some(1));
        bytes[4..8].copy_from_slice(&(-1.0f32).to_le_bytes());
        assert_eq!(Int8Embedding::new(&bytes, 2, 3).unwrap().first_bad_scale(), Some(1));
        bytes[4..8].copy_from_slice(&(f32::MAX / 64.0).to_le_bytes()); // 128·scale overflows
        assert_eq!(Int8Embedding::new(&bytes, 2, 3).unwrap().first_bad_scale(), Some(1));
        bytes[4..8].copy_from_slice(&(f32::MAX / 256.0).to_le_bytes());
        assert_eq!(Int8Embedding::new(&bytes, 2, 3).unwrap().first_bad_scale(), None);
    }
}
