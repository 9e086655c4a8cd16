//! pollux's control plane: configuration, the data plane's wiring, the
//! management API and metrics. `unsafe` is forbidden here.
#![forbid(unsafe_code)]

pub mod bfd;
pub mod bgp;
pub mod capture;
pub mod config;
pub mod events;
pub mod health;
pub mod kernel;
pub mod lb;
pub mod pod;
pub mod reload;
pub mod render;
pub mod run;
pub mod scaleout;
pub mod state;
