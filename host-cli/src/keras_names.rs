//! Keras names of a model's tensors, written once: the weight names a fresh Keras session gives
//! the seed model's layers (used by the exports and the npz reader) and the short names used in
//! messages (`lstm_1/kernel`).

use tinylstm::spec::{Spec, Tensor, TensorKind};

/// Keras layer name of LSTM layer `l` (`lstm`, `lstm_1`, …).
fn lstm_layer(l: usize) -> String {
    if l == 0 {
        "lstm".to_string()
    } else {
        format!("lstm_{l}")
    }
}

/// Layer name and variable name of a tensor (`("lstm_1", "kernel")`); LSTM variables sit in the
/// layer's `lstm_cell`.
fn layer_and_variable(tensor: &Tensor) -> (String, &'static str) {
    match tensor.kind {
        TensorKind::Embedding => ("embedding".into(), "embeddings"),
        TensorKind::Kernel => (lstm_layer(tensor.layer), "kernel"),
        TensorKind::RecurrentKernel => (lstm_layer(tensor.layer), "recurrent_kernel"),
        TensorKind::Bias => (lstm_layer(tensor.layer), "bias"),
        TensorKind::DenseKernel => ("dense".into(), "kernel"),
        TensorKind::DenseBias => ("dense".into(), "bias"),
    }
}

fn is_lstm(tensor: &Tensor) -> bool {
    matches!(tensor.kind, TensorKind::Kernel | TensorKind::RecurrentKernel | TensorKind::Bias)
}

/// The Keras weight name of a tensor, as a fresh Keras session names the seed model's layers:
/// `embedding/embeddings`, `lstm/lstm_cell/kernel`, `lstm/lstm_cell/recurrent_kernel`,
/// `lstm/lstm_cell/bias`, `lstm_1/lstm_cell/kernel`, …, `dense/kernel`, `dense/bias`.
pub fn keras_weight_name(tensor: &Tensor) -> String {
    let (layer, variable) = layer_and_variable(tensor);
    if is_lstm(tensor) {
        format!("{layer}/lstm_cell/{variable}")
    } else {
        format!("{layer}/{variable}")
    }
}

/// The Keras weight names of a valid spec's tensors, in `get_weights()` order (empty for an
/// invalid spec).
pub fn keras_weight_names(spec: &Spec) -> Vec<String> {
    if !spec.is_valid() {
        return Vec::new();
    }
    spec.tensors().map(|t| keras_weight_name(&t)).collect()
}

/// The Keras shape of a tensor: `[rows, cols]` for the embedding and the kernels, `[len]` for
/// the biases.
pub fn keras_shape(tensor: &Tensor) -> Vec<usize> {
    match tensor.kind {
        TensorKind::Bias | TensorKind::DenseBias => vec![tensor.len()],
        _ => vec![tensor.rows, tensor.cols],
    }
}

/// Short Keras-style name of tensor `index` of a spec, for messages (`lstm_1/kernel`,
/// `dense/bias`; `tensor 9` past the last tensor).
pub fn tensor_name(spec: &Spec, index: usize) -> String {
    match spec.tensor(index) {
        None => format!("tensor {index}"),
        Some(t) => {
            let (layer, variable) = layer_and_variable(&t);
            format!("{layer}/{variable}")
        }
    }
}
