//! Configuration: [`raw`] is the file as written (serde, unknown keys
//! rejected); [`validate`] turns it into [`Config`], whose types carry no
//! unchecked values. Every error names the offending field by its path
//! (`virtualServers[0].members[1].address`). Nothing here touches DPDK or
//! the network, so `pollux check` and `pollux run` share it and `run`
//! validates everything before the data plane starts.

pub mod raw;
mod validate;

use std::path::Path;

pub use validate::*;

/// A configuration error: the field's path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct Error {
    pub path: String,
    pub message: String,
}

impl Error {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Error {
        Error {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Where the host's facts come from (the CPUs this process may use, the
/// environment), so tests can inject them.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub allowed_cpus: Vec<usize>,
    pub node_name: Option<String>,
}

impl HostFacts {
    pub fn probe() -> HostFacts {
        let mut cpus: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        cpus.sort_unstable();
        HostFacts {
            allowed_cpus: cpus,
            node_name: std::env::var("NODE_NAME").ok().filter(|s| !s.is_empty()),
        }
    }
}

/// Parses YAML text into the raw layer; errors name the field's path.
pub fn parse(text: &str) -> Result<raw::Config, Error> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde_yaml_ng appends " at line L column C"; keep it, it helps.
        Error::new(
            if path == "." {
                "(top level)".to_string()
            } else {
                path
            },
            inner,
        )
    })
}

/// Reads, parses and validates a configuration file.
pub fn load(path: &Path, host: &HostFacts) -> Result<Config, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::new("(file)", format!("cannot read {}: {e}", path.display())))?;
    validate(&parse(&text)?, host)
}
