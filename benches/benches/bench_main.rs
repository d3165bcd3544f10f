//! Criterion benches for the tinylstm core: kernels, LSTM passes, BPTT and the optimizer, at the
//! shapes of the two workloads in `BENCHMARKS.md`.
//!
//! Every group reports `Throughput::Elements(n)` where `n` is the number of floating-point
//! operations (a multiply and an add count as two), so criterion's "elem/s" reads as FLOP/s
//! ("Gelem/s" = GFLOP/s). The Adam group is the exception: its elements are parameters.
//!
//! ```sh
//! cargo bench -p tinylstm-benches                       # everything (a few minutes)
//! cargo bench -p tinylstm-benches -- gemm_nn            # one group (criterion filter)
//! ```

mod benchmarks;

criterion::criterion_main!(
    benchmarks::kernels::benches,
    benchmarks::lstm::benches,
    benchmarks::train::benches,
);
