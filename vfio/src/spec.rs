//! The `device:` value of a port, and PCI addresses.
//!
//! A port's device is one of:
//!
//! | spec                                   | meaning                                         |
//! |----------------------------------------|-------------------------------------------------|
//! | `env:PCIDEVICE_OPENSHIFT_IO_INTELNICS` | the only VF of that device-plugin resource      |
//! | `env:PCIDEVICE_OPENSHIFT_IO_INTELNICS[1]` | the second VF (0-based, order of the variable) |
//! | `env:PCIDEVICE_OPENSHIFT_IO_INTELNICS@sriov-ext` | the VF that Multus attached for network `sriov-ext` (`ns/name` or `name`) |
//! | `0000:3b:02.0`                          | that PCI function                              |
//! | anything else (`net_af_xdp0`, ...)      | a DPDK vdev/port name: not a VF, not checked    |
//!
//! Kubelet gives no order guarantee between the addresses in
//! `PCIDEVICE_<RESOURCE>` and the networks of the pod annotation, so when
//! one resource backs several networks, select by network (`@name`), which
//! reads Multus's `network-status`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A PCI address, `domain:bus:device.function`, printed the way sysfs and
/// DPDK's `-a` spell it (`0000:3b:02.0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    pub domain: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl FromStr for Bdf {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        let s = s.trim();
        let (dom, rest) = match s.matches(':').count() {
            2 => s.split_once(':').ok_or(())?,
            1 => ("0000", s), // BB:DD.F, domain 0
            _ => return Err(()),
        };
        let (bus, rest) = rest.split_once(':').ok_or(())?;
        let (dev, func) = rest.split_once('.').ok_or(())?;
        let hex = |t: &str, max_len: usize| -> std::result::Result<u32, ()> {
            if t.is_empty() || t.len() > max_len || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(());
            }
            u32::from_str_radix(t, 16).map_err(drop)
        };
        let device = hex(dev, 2)?;
        let function = hex(func, 1)?;
        if device > 0x1f || function > 7 {
            return Err(());
        }
        Ok(Bdf {
            domain: hex(dom, 4)? as u16,
            bus: hex(bus, 2)? as u8,
            device: device as u8,
            function: function as u8,
        })
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

/// Which VF of a resource variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Select {
    /// The only one (error when the variable holds several).
    Only,
    /// By position in the variable.
    Index(usize),
    /// By Multus network name (`ns/name` or `name`).
    Network(String),
}

/// A parsed `device:` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// A VF named through the device plugin's environment variable.
    Env { var: String, select: Select },
    /// A PCI function by address.
    Pci(Bdf),
    /// A DPDK device name that is not a PCI function (a vdev): discovery
    /// leaves it alone.
    Other(String),
}

impl DeviceSpec {
    /// Parse a port's `device:` value.
    pub fn parse(spec: &str) -> Result<DeviceSpec> {
        let bad = |reason: &str| Error::BadSpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let Some(rest) = spec.strip_prefix("env:") else {
            if let Ok(bdf) = spec.parse::<Bdf>() {
                return Ok(DeviceSpec::Pci(bdf));
            }
            if spec.is_empty() {
                return Err(bad("it is empty"));
            }
            return Ok(DeviceSpec::Other(spec.to_string()));
        };
        let (var, select) = if let Some((var, net)) = rest.split_once('@') {
            if net.is_empty() {
                return Err(bad("nothing follows `@`"));
            }
            (var, Select::Network(net.to_string()))
        } else if let Some(open) = rest.find('[') {
            let inner = rest[open + 1..]
                .strip_suffix(']')
                .ok_or_else(|| bad("`[` without a closing `]` at the end"))?;
            let index = inner
                .parse::<usize>()
                .map_err(|_| bad("the index in `[...]` is not a number"))?;
            (&rest[..open], Select::Index(index))
        } else {
            (rest, Select::Only)
        };
        if !var.starts_with("PCIDEVICE_") || var.len() == "PCIDEVICE_".len() {
            return Err(bad("the variable must be PCIDEVICE_<RESOURCE>"));
        }
        if !var
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(bad(
                "the variable name has characters other than A-Z, 0-9 and _",
            ));
        }
        if var.ends_with("_INFO") {
            return Err(bad("name the address variable, not its _INFO companion"));
        }
        Ok(DeviceSpec::Env {
            var: var.to_string(),
            select,
        })
    }
}

/// The variable the SR-IOV device plugin sets for a resource:
/// `PCIDEVICE_` + the resource name upper-cased with `.` and `/` as `_`
/// (`openshift.io/intelnics` → `PCIDEVICE_OPENSHIFT_IO_INTELNICS`).
pub fn env_var_for_resource(resource: &str) -> String {
    let mut v = String::from("PCIDEVICE_");
    for c in resource.chars() {
        v.push(match c {
            '.' | '/' | '-' => '_',
            c => c.to_ascii_uppercase(),
        });
    }
    v
}

/// A best guess at the resource behind a `PCIDEVICE_` variable, for error
/// messages (the mapping is not reversible: `_` may have been `.` or `/`).
/// `PCIDEVICE_OPENSHIFT_IO_INTELNICS` → `openshift.io/intelnics`.
pub fn guess_resource(var: &str) -> String {
    let body = var
        .strip_prefix("PCIDEVICE_")
        .unwrap_or(var)
        .to_ascii_lowercase();
    for tld in ["_io_", "_com_", "_org_", "_net_", "_ai_"] {
        if let Some(pos) = body.find(tld) {
            let (prefix, rest) = body.split_at(pos);
            let tld_name = &tld[1..tld.len() - 1];
            return format!(
                "{}.{}/{}",
                prefix.replace('_', "."),
                tld_name,
                &rest[tld.len()..]
            );
        }
    }
    match body.split_once('_') {
        Some((a, b)) => format!("{a}/{b}"),
        None => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdf_parses_and_prints() {
        let b: Bdf = "0000:3b:02.1".parse().unwrap();
        assert_eq!(b.to_string(), "0000:3b:02.1");
        let b: Bdf = "3b:0a.7".parse().unwrap();
        assert_eq!(b.to_string(), "0000:3b:0a.7");
        let b: Bdf = "ABCD:FF:1F.0".parse().unwrap();
        assert_eq!(b.to_string(), "abcd:ff:1f.0");
        for bad in [
            "",
            "0000:3b:02",
            "0000:3b:20.0",
            "0000:3b:02.8",
            "x:3b:02.0",
            "net_ring0",
        ] {
            assert!(bad.parse::<Bdf>().is_err(), "{bad}");
        }
    }

    #[test]
    fn specs_parse() {
        assert_eq!(
            DeviceSpec::parse("env:PCIDEVICE_OPENSHIFT_IO_INTELNICS").unwrap(),
            DeviceSpec::Env {
                var: "PCIDEVICE_OPENSHIFT_IO_INTELNICS".into(),
                select: Select::Only
            }
        );
        assert_eq!(
            DeviceSpec::parse("env:PCIDEVICE_A_IO_X[1]").unwrap(),
            DeviceSpec::Env {
                var: "PCIDEVICE_A_IO_X".into(),
                select: Select::Index(1)
            }
        );
        assert_eq!(
            DeviceSpec::parse("env:PCIDEVICE_A_IO_X@ns/ext").unwrap(),
            DeviceSpec::Env {
                var: "PCIDEVICE_A_IO_X".into(),
                select: Select::Network("ns/ext".into())
            }
        );
        assert_eq!(
            DeviceSpec::parse("0000:3b:02.0").unwrap(),
            DeviceSpec::Pci("0000:3b:02.0".parse().unwrap())
        );
        assert_eq!(
            DeviceSpec::parse("net_af_xdp0").unwrap(),
            DeviceSpec::Other("net_af_xdp0".into())
        );
    }

    #[test]
    fn bad_specs_say_why() {
        for (spec, why) in [
            ("env:FOO", "PCIDEVICE_<RESOURCE>"),
            ("env:PCIDEVICE_", "PCIDEVICE_<RESOURCE>"),
            ("env:PCIDEVICE_X[1", "closing"),
            ("env:PCIDEVICE_X[a]", "not a number"),
            ("env:PCIDEVICE_X@", "nothing follows"),
            ("env:PCIDEVICE_x", "A-Z"),
            ("env:PCIDEVICE_X_INFO", "_INFO"),
            ("", "empty"),
        ] {
            let msg = DeviceSpec::parse(spec).unwrap_err().to_string();
            assert!(msg.contains(why), "{spec}: {msg}");
            assert!(msg.contains("env:PCIDEVICE_<RESOURCE>[<index>]"), "{msg}");
        }
    }

    #[test]
    fn resource_names_map_to_variables_and_back() {
        assert_eq!(
            env_var_for_resource("openshift.io/intelnics"),
            "PCIDEVICE_OPENSHIFT_IO_INTELNICS"
        );
        assert_eq!(
            guess_resource("PCIDEVICE_OPENSHIFT_IO_INTELNICS"),
            "openshift.io/intelnics"
        );
        assert_eq!(
            guess_resource("PCIDEVICE_INTEL_COM_SRIOV_DPDK"),
            "intel.com/sriov_dpdk"
        );
    }
}
