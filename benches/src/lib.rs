//! Criterion benchmarks live in `benches/`; this library holds their shared fixtures.
