//! Firmware and inspection exports (Rust source, C header, JSON) and Keras weight import/export (npz).
