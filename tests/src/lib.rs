//! Integration tests live in `tests/`; this library only compiles README.md's Rust examples
//! as doc tests, so the README cannot drift from the API.
#![doc = include_str!("../../README.md")]
