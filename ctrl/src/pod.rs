//! Ports that are SR-IOV VFs (`device: env:PCIDEVICE_…` or a PCI address):
//! discovery through the vfio crate, before DPDK is touched. `pollux check`
//! prints what it found; `pollux run` refuses to start with the same
//! messages. Ports on DPDK virtual devices need none of this.

use vfio::{Context, Discovery, Request, Workers};

use crate::config::{Config, Error};

/// Resolves every VF port to its PCI address and adds it to the EAL
/// allow-list. `Ok(None)` when no port is a VF.
pub fn resolve(cfg: &mut Config, ctx: &Context) -> Result<Option<Discovery>, Error> {
    let dp = &mut cfg.dataplane;
    let mut any = false;
    for (i, p) in dp.ports.iter().enumerate() {
        any |= vfio::is_vf(&p.device)
            .map_err(|e| Error::new(format!("dataplane.ports[{i}].device"), e.to_string()))?;
    }
    if !any {
        return Ok(None);
    }
    let req = Request::new(
        format!("pollux-{}", dp.instance),
        dp.ports.iter().map(|p| p.device.clone()).collect(),
        Workers::Cores(dp.workers.iter().map(|w| w.cpu).collect()),
        &dp.eal,
    );
    let found = vfio::discover(&req, ctx).map_err(|e| {
        let at = dp
            .ports
            .iter()
            .position(|p| e.to_string().contains(p.device.trim_start_matches("env:")))
            .unwrap_or(0);
        Error::new(format!("dataplane.ports[{at}].device"), e.to_string())
    })?;
    for p in &mut dp.ports {
        if let Some(vf) = found.vf_for(&p.device) {
            let bdf = vf.bdf.to_string();
            if !dp.eal.contains(&bdf) {
                dp.eal.extend(["-a".to_string(), bdf.clone()]);
            }
            p.device = bdf;
        }
    }
    Ok(Some(found))
}
