//! pollux's data plane. See `worker` for the loop and `api` for what ctrl sees.
pub mod bfd;
pub mod counters;
pub mod host;
pub mod wire;
