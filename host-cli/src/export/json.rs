//! JSON export for people and scripts: see the module docs of [`super`].

use super::{check, head_name, keras_shape, keras_weight_name};

use serde_json::{Map, Value};
use tinylstm::spec::{InputKind, Spec};
// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

/// A JSON value for an `f32`: the shortest decimal that reads back to it, or a string for
/// NaN and infinities.
fn json_f32(x: f32) -> Value {
    if x.is_finite() {
        let v = format!("{x:?}").parse::<f64>().unwrap_or(f64::from(x));
        serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
    } else if x.is_nan() {
        Value::from("NaN")
    } else if x > 0.0 {
        Value::from("Infinity")
    } else {
        Value::from("-Infinity")
    }
}

fn spec_json(spec: &Spec) -> Value {
    let mut m = Map::new();
    match spec.input {
        InputKind::Tokens { vocab, embed } => {
            m.insert("input".into(), "tokens".into());
            m.insert("vocab".into(), vocab.into());
            m.insert("embedding_dim".into(), embed.into());
        }
        InputKind::Channels(c) => {
            m.insert("input".into(), "channels".into());
            m.insert("channels".into(), c.into());
        }
    }
    let units: Vec<Value> = spec.units.iter().take(spec.layers).map(|&u| u.into()).collect();
    m.insert("layers".into(), spec.layers.into());
    m.insert("units".into(), Value::Array(units));
    m.insert("outputs".into(), spec.outputs.into());
    m.insert("head".into(), head_name(spec.head).into());
    if spec.is_valid() {
        m.insert("param_count".into(), spec.param_count().into());
    }
    Value::Object(m)
}

/// A JSON document for inspection:
///
/// ```text
/// { "format": "tinylstm-weights", "version": 1,
///   "spec": { "input": "tokens", "vocab": 50, "embedding_dim": 8, "layers": 2,
///             "units": [16, 8], "outputs": 1, "head": "sigmoid", "param_count": 2977 },
///   "tensors": [ { "name": "embedding/embeddings", "shape": [50, 8], "offset": 0 }, … ],
///   "weights": { "embedding/embeddings": [[…], …], "lstm/lstm_cell/kernel": [[…]], … },
///   "extra": … }
/// ```
///
/// `tensors` lists the tensors in `get_weights()` order; `weights` holds each as nested arrays
/// in its Keras shape, under its Keras name; `extra` is `extra` when given (metrics, training
/// settings…). Numbers are shortest round-trip decimals, non-finite values the strings `"NaN"`,
/// `"Infinity"`, `"-Infinity"`.
///
/// This never fails: for an invalid spec or a buffer of the wrong length it returns the spec's
/// fields and an `"error"` message instead of `tensors` and `weights` ([`check`] tells the same
/// as an `Err`).
pub fn json(spec: &Spec, params: &[f32], extra: Option<Value>) -> Value {
    let mut root = Map::new();
    root.insert("format".into(), "tinylstm-weights".into());
    root.insert("version".into(), 1.into());
    root.insert("spec".into(), spec_json(spec));
    match check(spec, params) {
        Err(e) => {
            root.insert("error".into(), e.to_string().into());
        }
        Ok(()) => {
            let mut tensors = Vec::new();
            let mut weights = Map::new();
            for t in spec.tensors() {
                let name = keras_weight_name(&t);
                let shape = keras_shape(&t);
                let data = &params[t.range()];
                let value = if shape.len() == 1 {
                    Value::Array(data.iter().map(|&x| json_f32(x)).collect())
                } else {
                    Value::Array(
                        data.chunks(t.cols)
                            .map(|row| Value::Array(row.iter().map(|&x| json_f32(x)).collect()))
                            .collect(),
                    )
                };
                let mut entry = Map::new();
                entry.insert("name".into(), name.clone().into());
                entry.insert("shape".into(), shape.into());
                entry.insert("offset".into(), t.offset.into());
                tensors.push(Value::Object(entry));
                weights.insert(name, value);
            }
            root.insert("tensors".into(), Value::Array(tensors));
            root.insert("weights".into(), Value::Object(weights));
        }
    }
    if let Some(extra) = extra {
        root.insert("extra".into(), extra);
    }
    Value::Object(root)
}
