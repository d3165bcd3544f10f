//! A model's per-layer summary, as Keras `model.summary()` prints it: each layer's output shape
//! and parameter count, plus the memory the weights and a device's buffers take (f32, 4 bytes
//! each; every size from the core's `const fn`s).

use std::fmt::Write as _;
use tinylstm::{Head, InputKind, Spec};

/// One row of the summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerRow {
    /// Keras layer name and type (`lstm_1 (LSTM)`).
    pub layer: String,
    /// Output shape, Keras style (`(None, 100, 64)`; `None` is the batch).
    pub output_shape: String,
    /// Trainable parameters.
    pub params: usize,
}

/// The rows of `spec`'s summary for sequences of `steps` time steps (`None`: any length).
pub fn layer_rows(spec: &Spec, steps: Option<usize>) -> Vec<LayerRow> {
    let t = steps.map_or_else(|| "None".to_string(), |s| s.to_string());
    let mut rows = Vec::new();
    if let InputKind::Tokens { vocab, embed } = spec.input {
        rows.push(LayerRow {
            layer: "embedding (Embedding)".into(),
            output_shape: format!("(None, {t}, {embed})"),
            params: vocab * embed,
        });
    }
    for l in 0..spec.layers {
        let name = if l == 0 { "lstm".to_string() } else { format!("lstm_{l}") };
        let u = spec.units[l];
        let last = l + 1 == spec.layers;
        rows.push(LayerRow {
            layer: format!("{name} (LSTM)"),
            output_shape: if last { format!("(None, {u})") } else { format!("(None, {t}, {u})") },
            params: spec.layer_len(l),
        });
    }
    let head = head_name(spec.head);
    rows.push(LayerRow {
        layer: format!("dense (Dense, {head})"),
        output_shape: format!("(None, {})", spec.outputs),
        params: spec.top_units() * spec.outputs + spec.outputs,
    });
    rows
}

/// The head's activation as Keras names it (`sigmoid`, `softmax`, `linear`).
pub fn head_name(head: Head) -> &'static str {
    match head {
        Head::Sigmoid => "sigmoid",
        Head::Softmax => "softmax",
        Head::Linear => "linear",
    }
}

/// `bytes` in B, KiB or MiB.
pub fn human_bytes(bytes: usize) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1024 * 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

/// The summary as text: the layer table, the parameter total with the weights' size, and the RAM
/// a device needs besides the weights to run the model (one sequence, step by step: the `h`/`c`
/// state and the step's work buffer).
pub fn summary(spec: &Spec, steps: Option<usize>) -> String {
    let rows = layer_rows(spec, steps);
    let w0 = rows.iter().map(|r| r.layer.chars().count()).max().unwrap_or(0).max(12);
    let w1 = rows.iter().map(|r| r.output_shape.len()).max().unwrap_or(0).max(12);
    let mut s = String::new();
    let rule = "─".repeat(w0 + w1 + 16);
    let _ = writeln!(s, "{:<w0$}  {:<w1$}  {:>12}", "Layer (type)", "Output Shape", "Param #");
    let _ = writeln!(s, "{rule}");
    for r in &rows {
        let _ = writeln!(s, "{:<w0$}  {:<w1$}  {:>12}", r.layer, r.output_shape, r.params);
    }
    let _ = writeln!(s, "{rule}");
    let params = spec.param_count();
    let _ = writeln!(s, "Total params: {params} ({})", human_bytes(params * 4));
    // One sequence's sizes of a spec that validated cannot overflow; saturate regardless.
    let state = spec.state_len(1).unwrap_or(usize::MAX).saturating_mul(4);
    let step = spec.step_work_len(1).unwrap_or(usize::MAX).saturating_mul(4);
    let _ = writeln!(
        s,
        "Device RAM besides the weights, streaming one sequence: {} (state {}, step work {})",
        human_bytes(state.saturating_add(step)),
        human_bytes(state),
        human_bytes(step)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parameter counts as Keras's `model.summary()` prints them for the seed model
    /// (Embedding(10000, 64) → LSTM(128, return_sequences) → LSTM(64) → Dense(1)):
    /// 640 000, 98 816, 49 408 and 65, total 788 289.
    #[test]
    fn seed_model_matches_keras_summary() {
        let spec = Spec::tokens(10_000, 64).lstm(128).lstm(64).dense(1, Head::Sigmoid);
        let rows = layer_rows(&spec, Some(100));
        let got: Vec<(&str, &str, usize)> =
            rows.iter().map(|r| (r.layer.as_str(), r.output_shape.as_str(), r.params)).collect();
        assert_eq!(
            got,
            [
                ("embedding (Embedding)", "(None, 100, 64)", 640_000),
                ("lstm (LSTM)", "(None, 100, 128)", 98_816),
                ("lstm_1 (LSTM)", "(None, 64)", 49_408),
                ("dense (Dense, sigmoid)", "(None, 1)", 65),
            ]
        );
        assert_eq!(rows.iter().map(|r| r.params).sum::<usize>(), spec.param_count());
        let text = summary(&spec, Some(100));
        assert!(text.contains("Total params: 788289 (3.0 MiB)"), "{text}");
        // A streaming device keeps h and c of both layers: 2 · (128 + 64) floats, 1536 bytes.
        assert!(text.contains("Device RAM besides the weights"), "{text}");
        assert!(text.contains("(state 1.5 KiB, step work "), "{text}");
    }

    #[test]
    fn sequence_model_rows() {
        let spec = Spec::channels(6).lstm(32).dense(4, Head::Softmax);
        let rows = layer_rows(&spec, None);
        assert_eq!(rows[0].output_shape, "(None, 32)");
        // 4·32·(6 + 32 + 1) = 4992; Dense 32·4 + 4 = 132.
        assert_eq!((rows[0].params, rows[1].params), (4992, 132));
        assert_eq!(human_bytes(1000), "1000 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
    }
}
