//! Any text as a config file: `pollux check` and `run` parse then validate
//! it; both must answer (an error naming a field) without panicking.
#![no_main]
use ctrl::config::{self, HostFacts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let host = HostFacts {
        allowed_cpus: vec![0, 1, 2, 3],
        node_name: Some("node-a".into()),
    };
    if let Ok(raw) = config::parse(text) {
        let _ = config::validate(&raw, &host);
    }
});
