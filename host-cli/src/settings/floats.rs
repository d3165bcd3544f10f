//! The rules every floating-point setting is checked against, in flags, config files and
//! settings built in code alike.

/// What a floating-point setting accepts when flags and config files are read. NaN and ±Inf
/// are never accepted: merging flags over a config file goes through JSON, which has no such
/// numbers and would silently turn them into "not given" (the default). Ranges the core
/// checks (momentum, β, ε, clipping, decay) are checked by [`TrainArgs::validate`] through the
/// core's own `validate`, naming the setting; the rules here are the rest.
///
/// [`TrainArgs::validate`]: super::TrainArgs::validate
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FloatRule {
    /// Any finite number.
    Finite,
    /// A finite number ≥ 0.
    NonNegative,
    /// A number in [0, 1].
    Fraction,
    /// A finite number > 0.
    Positive,
}

impl FloatRule {
    /// Why `v` breaks the rule, if it does. `f32` settings hold at most ±3.4e38: a larger value
    /// (`1e39`) reads as infinite.
    pub(super) fn problem(self, v: f64, f32_setting: bool) -> Option<&'static str> {
        let ok = match self {
            FloatRule::Finite => v.is_finite(),
            FloatRule::NonNegative => v.is_finite() && v >= 0.0,
            FloatRule::Fraction => (0.0..=1.0).contains(&v),
            FloatRule::Positive => v.is_finite() && v > 0.0,
        };
        match (ok, self, f32_setting) {
            (true, ..) => None,
            (false, FloatRule::Finite, true) => {
                Some("must be a finite number (an f32: at most ±3.4e38)")
            }
            (false, FloatRule::Finite, false) => Some("must be a finite number"),
            (false, FloatRule::NonNegative, true) => {
                Some("must be a finite number ≥ 0 (an f32: at most 3.4e38)")
            }
            (false, FloatRule::NonNegative, false) => Some("must be a finite number ≥ 0"),
            (false, FloatRule::Fraction, _) => Some("must be a fraction from 0 to 1"),
            (false, FloatRule::Positive, true) => {
                Some("must be a finite number > 0 (an f32: at most 3.4e38)")
            }
            (false, FloatRule::Positive, false) => Some("must be a finite number > 0"),
        }
    }
}

/// Parses a float flag and checks it against `rule` (clap names the flag in the error).
fn float_flag<T>(s: &str, rule: FloatRule, f32_setting: bool) -> Result<T, String>
where
    T: std::str::FromStr<Err = std::num::ParseFloatError> + Into<f64> + Copy,
{
    let v: T = s.trim().parse().map_err(|e: std::num::ParseFloatError| e.to_string())?;
    match rule.problem(v.into(), f32_setting) {
        None => Ok(v),
        Some(p) => Err(p.to_string()),
    }
}

pub(super) fn finite_f32(s: &str) -> Result<f32, String> {
    float_flag(s, FloatRule::Finite, true)
}

pub(super) fn positive_f32(s: &str) -> Result<f32, String> {
    float_flag(s, FloatRule::Positive, true)
}

pub(super) fn finite_f64(s: &str) -> Result<f64, String> {
    float_flag(s, FloatRule::Finite, false)
}

pub(super) fn non_negative_f32(s: &str) -> Result<f32, String> {
    float_flag(s, FloatRule::NonNegative, true)
}

pub(super) fn non_negative_f64(s: &str) -> Result<f64, String> {
    float_flag(s, FloatRule::NonNegative, false)
}

pub(super) fn fraction_f64(s: &str) -> Result<f64, String> {
    float_flag(s, FloatRule::Fraction, false)
}

/// A floating-point setting whose value is not allowed (see
/// [`TrainArgs::validate`](super::TrainArgs::validate)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InvalidFloat {
    /// The setting's key as a config file spells it (`lr`, `min_delta`).
    pub key: &'static str,
    /// Its value (an `f32` setting widened to `f64`).
    pub value: f64,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl InvalidFloat {
    /// The setting's flag (`--lr`, `--min-delta`).
    pub fn flag(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }
}

impl std::fmt::Display for InvalidFloat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` = {}: {}", self.key, self.value, self.problem)
    }
}

/// The line (1-based) of `text` that assigns `key` (`key = …` at the start of a line), if any.
pub(super) fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.trim_start().strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}
