//! The `tinylstm` command line.

fn main() {}
