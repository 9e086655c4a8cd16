//! Benchmarks for pollux (see bench/README.md).
