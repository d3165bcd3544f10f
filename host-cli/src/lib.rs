//! Library side of the `tinylstm` command line: data pipeline, training loop, reports.
