//! A token model's input-projection table for inference: `b₀ + E·W₀` per token
//! (`[vocab][4H₀]`, [`tinylstm::model::projection_rows_with`]), built once per set of weights,
//! so that layer 0 of every forward pass gathers rows instead of multiplying each time step's
//! embedding by its kernel. On the exact path the outputs are the same bits as without it.

use anyhow::{anyhow, bail, Result};
use rayon::prelude::*;
use tinylstm::model::{projection_rows_with, projection_table_len};
use tinylstm::Spec;
use tinylstm_fast::KernelPath;

/// Largest table built, in bytes: the seed model's (10 000 tokens × 512 gates) is 20 MB.
pub const MAX_TABLE_BYTES: usize = 64 << 20;

/// Whether a table pays for `token_steps` token-steps of inference (sequences × steps): it
/// costs `vocab·E·4H₀` multiply-adds and saves `E·4H₀` per token-step, so from `vocab`
/// token-steps on. `false` for channel models and for tables over [`MAX_TABLE_BYTES`].
pub fn table_pays(spec: &Spec, token_steps: usize) -> bool {
    let tinylstm::InputKind::Tokens { vocab, .. } = spec.input else {
        return false;
    };
    let fits = projection_table_len(spec)
        .and_then(|n| n.checked_mul(4))
        .is_some_and(|bytes| bytes <= MAX_TABLE_BYTES);
    fits && token_steps >= vocab
}

/// The table of `params` on `kernels` (see [`table_pays`] for when to build one), its rows
/// split over the threads of the current rayon pool in blocks of 256 tokens (each row is
/// computed the same way whatever the split, so the table is the same for any thread count).
pub fn build_table(kernels: KernelPath, spec: &Spec, params: &[f32]) -> Result<Vec<f32>> {
    let len = projection_table_len(spec).ok_or_else(|| anyhow!("not a token model"))?;
    if len > MAX_TABLE_BYTES / 4 {
        bail!("projection table of {len} floats: over the {MAX_TABLE_BYTES}-byte bound");
    }
    let g4 = 4 * spec.units[0];
    let mut table = vec![0.0f32; len];
    table.par_chunks_mut(256 * g4).enumerate().try_for_each(|(i, rows)| {
        projection_rows_with(kernels, spec, params, i * 256, rows)
            .map_err(|e| anyhow!("projection table: {e}"))
    })?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinylstm::Head;

    #[test]
    fn pays_from_vocab_token_steps_and_within_the_size_bound() {
        let seed = Spec::tokens(10_000, 64).lstm(128).lstm(64).dense(1, Head::Sigmoid);
        assert!(!table_pays(&seed, 9_999));
        assert!(table_pays(&seed, 10_000));
        // 40 000 × 512 gates × 4 bytes = 82 MB: over the bound.
        let big = Spec::tokens(40_000, 64).lstm(128).dense(1, Head::Sigmoid);
        assert!(!table_pays(&big, usize::MAX));
        let channels = Spec::channels(6).lstm(32).dense(4, Head::Softmax);
        assert!(!table_pays(&channels, usize::MAX));
    }

    #[test]
    fn the_table_is_the_same_for_any_thread_count() {
        let spec = Spec::tokens(700, 8).lstm(5).dense(1, Head::Sigmoid);
        let mut p = vec![0.0; spec.param_count()];
        tinylstm::init::init_params(&spec, 3, &mut p).unwrap();
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for kernels in [KernelPath::Exact, KernelPath::fast()] {
            let a = one.install(|| build_table(kernels, &spec, &p)).unwrap();
            let b = three.install(|| build_table(kernels, &spec, &p)).unwrap();
            let bits = |t: &[f32]| t.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b));
            // Not all zero: the rows hold b₀ + E·W₀.
            assert!(a.iter().any(|&v| v != 0.0));
        }
    }
}
