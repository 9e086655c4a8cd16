//! What Kubernetes tells the pod about its VFs: the device plugin's
//! `PCIDEVICE_<RESOURCE>_INFO` variable and Multus's `network-status`
//! annotation (read from a downward-API file).
//!
//! `PCIDEVICE_<RESOURCE>_INFO` (device-info spec, SR-IOV device plugin
//! >= 3.5) maps each allocated address to what each info provider adds:
//!
//! ```json
//! {"0000:3b:02.0": {"generic": {"deviceID": "0000:3b:02.0"},
//!                   "vfio": {"dev-mount": "/dev/vfio/73", "mount": "/dev/vfio/vfio"}}}
//! ```
//!
//! The downward-API annotations file has one `key="value"` line per
//! annotation, the value quoted and escaped as Go's `strconv.Quote` does. The
//! `k8s.v1.cni.cncf.io/network-status` value is a JSON list:
//!
//! ```json
//! [{"name": "ovn-kubernetes", "interface": "eth0", "default": true, ...},
//!  {"name": "ns/sriov-ext", "interface": "net1", "mac": "52:54:00:aa:bb:01",
//!   "device-info": {"type": "pci", "version": "1.1.0",
//!                   "pci": {"pci-address": "0000:3b:02.0"}}}]
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::spec::Bdf;

/// The vfio part of one device's INFO entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `vfio.dev-mount`: the group device as mounted in the container.
    pub dev_mount: Option<String>,
    /// `vfio.mount`: the VFIO container device (`/dev/vfio/vfio`).
    pub mount: Option<String>,
}

/// Parse a `PCIDEVICE_<RESOURCE>_INFO` value.
pub fn parse_device_info(var: &str, json: &str) -> Result<BTreeMap<String, DeviceInfo>> {
    #[derive(Deserialize)]
    struct Vfio {
        #[serde(rename = "dev-mount")]
        dev_mount: Option<String>,
        mount: Option<String>,
    }
    #[derive(Deserialize)]
    struct Entry {
        vfio: Option<Vfio>,
    }
    let raw: BTreeMap<String, Entry> =
        serde_json::from_str(json).map_err(|source| Error::InfoMalformed {
            var: var.to_string(),
            detail: source.to_string(),
            source,
        })?;
    Ok(raw
        .into_iter()
        .map(|(addr, e)| {
            let v = e.vfio.map_or_else(DeviceInfo::default, |v| DeviceInfo {
                dev_mount: v.dev_mount,
                mount: v.mount,
            });
            (addr, v)
        })
        .collect())
}

/// One attachment from Multus's network-status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// `ns/name` of the NetworkAttachmentDefinition (as Multus writes it).
    pub network: String,
    pub interface: Option<String>,
    pub mac: Option<String>,
    pub pci: Option<Bdf>,
}

impl Attachment {
    /// Whether `wanted` (`ns/name` or `name`) names this attachment.
    pub fn is_network(&self, wanted: &str) -> bool {
        self.network == wanted || self.network.rsplit('/').next() == Some(wanted)
    }
}

/// The annotation holding Multus's report of what it attached.
pub const NETWORK_STATUS: &str = "k8s.v1.cni.cncf.io/network-status";

/// Parse a network-status JSON value (`path` only names the source in
/// errors).
pub fn parse_network_status(path: &Path, json: &str) -> Result<Vec<Attachment>> {
    #[derive(Deserialize)]
    struct Pci {
        #[serde(rename = "pci-address")]
        pci_address: Option<String>,
    }
    #[derive(Deserialize)]
    struct Info {
        pci: Option<Pci>,
    }
    #[derive(Deserialize)]
    struct Entry {
        name: String,
        interface: Option<String>,
        mac: Option<String>,
        #[serde(rename = "device-info")]
        device_info: Option<Info>,
    }
    let raw: Vec<Entry> =
        serde_json::from_str(json).map_err(|source| Error::NetworkStatusMalformed {
            path: path.to_path_buf(),
            detail: source.to_string(),
            source,
        })?;
    Ok(raw
        .into_iter()
        .map(|e| Attachment {
            network: e.name,
            interface: e.interface,
            mac: e.mac,
            pci: e
                .device_info
                .and_then(|i| i.pci)
                .and_then(|p| p.pci_address)
                .and_then(|a| a.parse().ok()),
        })
        .collect())
}

/// Parse a downward-API annotations (or labels) file into key → value.
pub fn parse_downward_file(path: &Path, text: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || Error::AnnotationsMalformed {
            path: path.to_path_buf(),
            line: i + 1,
        };
        let (key, quoted) = line.split_once('=').ok_or_else(bad)?;
        let value = go_unquote(quoted).ok_or_else(bad)?;
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

/// Undo Go's `strconv.Quote` (the downward API writes values with it).
fn go_unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut bytes: Vec<u8> = Vec::new(); // pending \x / octal bytes
    let mut chars = inner.chars();
    let flush = |bytes: &mut Vec<u8>, out: &mut String| {
        if !bytes.is_empty() {
            out.push_str(&String::from_utf8_lossy(bytes));
            bytes.clear();
        }
    };
    while let Some(c) = chars.next() {
        if c == '"' {
            return None; // an unescaped quote inside
        }
        if c != '\\' {
            flush(&mut bytes, &mut out);
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        let mut hex = |n: usize| -> Option<u32> {
            let t: String = chars.by_ref().take(n).collect();
            if t.len() != n {
                return None;
            }
            u32::from_str_radix(&t, 16).ok()
        };
        match e {
            'x' => {
                bytes.push(hex(2)? as u8);
                continue;
            }
            '0'..='7' => {
                let t: String = std::iter::once(e).chain(chars.by_ref().take(2)).collect();
                bytes.push(u8::from_str_radix(&t, 8).ok()?);
                continue;
            }
            _ => {}
        }
        flush(&mut bytes, &mut out);
        out.push(match e {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'a' => '\x07',
            'b' => '\x08',
            'f' => '\x0c',
            'v' => '\x0b',
            '\\' => '\\',
            '"' => '"',
            '\'' => '\'',
            'u' => char::from_u32(hex(4)?)?,
            'U' => char::from_u32(hex(8)?)?,
            _ => return None,
        });
    }
    flush(&mut bytes, &mut out);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_info_in_the_plugin_format() {
        let info = parse_device_info(
            "PCIDEVICE_X_INFO",
            r#"{"0000:3b:02.0":{"generic":{"deviceID":"0000:3b:02.0"},
                "vfio":{"dev-mount":"/dev/vfio/73","mount":"/dev/vfio/vfio"}},
               "0000:3b:02.1":{"generic":{"deviceID":"0000:3b:02.1"}}}"#,
        )
        .unwrap();
        assert_eq!(
            info["0000:3b:02.0"].dev_mount.as_deref(),
            Some("/dev/vfio/73")
        );
        assert_eq!(
            info["0000:3b:02.0"].mount.as_deref(),
            Some("/dev/vfio/vfio")
        );
        assert_eq!(info["0000:3b:02.1"], DeviceInfo::default());
    }

    #[test]
    fn downward_file_unquotes_go_strings() {
        let text = concat!(
            "k8s.v1.cni.cncf.io/network-status=\"[{\\n    \\\"name\\\": \\\"ns/a\\\"\\n}]\"\n",
            "plain=\"tab\\there \\u00e9 \\xc3\\xa9 \\303\\251\"\n",
            "empty=\"\"\n",
        );
        let m = parse_downward_file(Path::new("/x"), text).unwrap();
        assert_eq!(m[NETWORK_STATUS], "[{\n    \"name\": \"ns/a\"\n}]");
        assert_eq!(m["plain"], "tab\there é é é");
        assert_eq!(m["empty"], "");
    }

    #[test]
    fn downward_file_rejects_garbage_with_line_number() {
        for text in [
            "a=\"ok\"\nnot a line\n",
            "a=unquoted\n",
            "a=\"bad \\q escape\"\n",
        ] {
            let e = parse_downward_file(Path::new("/etc/podinfo/annotations"), text).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("/etc/podinfo/annotations: line"), "{msg}");
            assert!(msg.contains("fieldPath: metadata.annotations"), "{msg}");
        }
    }

    #[test]
    fn network_status_maps_pci_to_network() {
        let a = parse_network_status(
            Path::new("/x"),
            r#"[{"name":"ovn-kubernetes","interface":"eth0","default":true},
                {"name":"ns/ext","interface":"net1","mac":"52:54:00:aa:bb:01",
                 "device-info":{"type":"pci","version":"1.1.0",
                                "pci":{"pci-address":"0000:3b:02.0"}}}]"#,
        )
        .unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].pci, Some("0000:3b:02.0".parse().unwrap()));
        assert_eq!(a[1].mac.as_deref(), Some("52:54:00:aa:bb:01"));
        assert!(a[1].is_network("ext") && a[1].is_network("ns/ext"));
        assert!(!a[1].is_network("s/ext"));
        assert_eq!(a[0].pci, None);
    }
}
