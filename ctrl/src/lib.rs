//! pollux control plane.
