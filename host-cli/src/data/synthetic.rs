//! The built-in synthetic task: seeded, gesture-like 3-axis waveforms in 4 classes.
//!
//! Each sample is `T` steps of 3 channels (think accelerometer x, y, z) with random amplitude,
//! speed, phase, timing, offset and Gaussian noise. The classes are built so that no single
//! time step and no per-channel statistic separates them — a model has to use time:
//!
//! | class | name | what happens |
//! |---|---|---|
//! | 0 | `circle_cw` | x = sin, y = cos: a clockwise circle |
//! | 1 | `circle_ccw` | x = sin, y = −cos: the same circle the other way (same per-channel values, opposite phase relation) |
//! | 2 | `tap_then_swipe` | a bump on z, later a bump on x |
//! | 3 | `swipe_then_tap` | the same two bumps in the opposite order |
//!
//! The same seed gives the same data on every platform (PCG-64 and IEEE arithmetic only;
//! `sin`/`cos`/`exp` come from `libm` so their bits do not depend on the system's libm).

use crate::data::{Dataset, DatasetKind, Features, Label, Sample};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;
use std::path::PathBuf;

/// Channels of the synthetic task.
pub const CHANNELS: usize = 3;
/// Classes of the synthetic task.
pub const CLASSES: usize = 4;
/// Class names, indexed by label.
pub const CLASS_NAMES: [&str; CLASSES] =
    ["circle_cw", "circle_ccw", "tap_then_swipe", "swipe_then_tap"];

/// Shape and size of a generated task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyntheticConfig {
    /// Samples in total (classes are balanced, rounded down per class).
    pub samples: usize,
    /// Time steps per sample.
    pub steps: usize,
    /// Standard deviation of the additive Gaussian noise.
    pub noise: f32,
    /// Seed of the generator.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig { samples: 2000, steps: 40, noise: 0.35, seed: 2026 }
    }
}

fn gaussian(rng: &mut Pcg64) -> f32 {
    // Box–Muller; u1 in (0, 1] so the log is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(std::f64::consts::TAU * u2)) as f32
}

fn bump(t: f32, centre: f32, width: f32) -> f32 {
    let d = (t - centre) / width;
    libm::expf(-0.5 * d * d)
}

/// One sample of class `class`, `steps × 3` values, timestep-major.
pub fn sample(class: usize, steps: usize, noise: f32, rng: &mut Pcg64) -> Vec<f32> {
    let mut v = vec![0.0f32; steps * CHANNELS];
    let amp = rng.random_range(0.6f32..1.4);
    let offset: [f32; CHANNELS] = core::array::from_fn(|_| rng.random_range(-0.5f32..0.5));
    let n = steps as f32;
    match class {
        0 | 1 => {
            let cycles = rng.random_range(1.0f32..2.5);
            let phase = rng.random_range(0.0f32..std::f32::consts::TAU);
            let dir = if class == 0 { 1.0 } else { -1.0 };
            for t in 0..steps {
                let a = std::f32::consts::TAU * cycles * t as f32 / n + phase;
                v[t * CHANNELS] = amp * libm::sinf(a);
                v[t * CHANNELS + 1] = dir * amp * libm::cosf(a);
                v[t * CHANNELS + 2] = 0.2 * amp * libm::sinf(2.0 * a);
            }
        }
        _ => {
            let width = rng.random_range(0.04f32..0.08) * n;
            let first = rng.random_range(0.15f32..0.4) * n;
            let second = rng.random_range(0.6f32..0.85) * n;
            let (z_at, x_at) = if class == 2 { (first, second) } else { (second, first) };
            let sign_z = if rng.random::<bool>() { 1.0 } else { -1.0 };
            let sign_x = if rng.random::<bool>() { 1.0 } else { -1.0 };
            for t in 0..steps {
                let tf = t as f32;
                v[t * CHANNELS] = sign_x * 1.5 * amp * bump(tf, x_at, width);
                v[t * CHANNELS + 1] = 0.3 * amp * libm::sinf(tf / n * 5.0);
                v[t * CHANNELS + 2] = sign_z * 1.5 * amp * bump(tf, z_at, width);
            }
        }
    }
    for (i, x) in v.iter_mut().enumerate() {
        *x += offset[i % CHANNELS] + noise * gaussian(rng);
    }
    v
}

/// Generates the whole task as a [`Dataset`] of sequence samples, classes interleaved.
pub fn generate(cfg: &SyntheticConfig) -> Dataset {
    let mut rng = Pcg64::seed_from_u64(cfg.seed);
    let per_class = cfg.samples / CLASSES;
    let mut samples = Vec::with_capacity(per_class * CLASSES);
    for i in 0..per_class * CLASSES {
        let class = i % CLASSES;
        let values = sample(class, cfg.steps, cfg.noise, &mut rng);
        samples.push(Sample {
            line: i as u64 + 1,
            label: Label::Class(class as u32),
            features: Features::Values { steps: cfg.steps, values },
        });
    }
    Dataset {
        source: PathBuf::from("<built-in synthetic gestures>"),
        kind: DatasetKind::Sequence { channels: CHANNELS },
        declared_classes: Some(CLASSES as u32),
        label_field: 1,
        label_name: "label".to_string(),
        samples,
        class_names: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_balanced() {
        let cfg = SyntheticConfig { samples: 40, ..SyntheticConfig::default() };
        let a = generate(&cfg);
        let b = generate(&cfg);
        assert_eq!(a, b);
        assert_eq!(a.class_counts(), vec![10; 4]);
        let c = generate(&SyntheticConfig { seed: 1, ..cfg });
        assert_ne!(a, c);
    }

    #[test]
    fn circle_classes_share_per_channel_statistics() {
        // The two circles differ only in the phase relation of x and y, not in their values'
        // distribution: their per-channel means of squares agree to within sampling noise.
        let mut rng = Pcg64::seed_from_u64(5);
        let mut energy = [[0.0f64; 2]; 2];
        for _ in 0..300 {
            for class in 0..2 {
                let v = sample(class, 40, 0.0, &mut rng);
                for t in 0..40 {
                    energy[class][0] += (v[t * 3] as f64).powi(2);
                    energy[class][1] += (v[t * 3 + 1] as f64).powi(2);
                }
            }
        }
        for ch in 0..2 {
            let ratio = energy[0][ch] / energy[1][ch];
            assert!((ratio - 1.0).abs() < 0.1, "channel {ch}: ratio {ratio}");
        }
    }
}
