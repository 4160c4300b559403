//! One discovered PCI function: identity, BARs, capabilities and recorded problems.
//!
//! Produced by `enumerate::enumerate`; `assign::assign_bars` updates `bars` and `command`. The
//! `problems` list collects everything odd the device or firmware did (PCI Local Bus 3.0 §6.1
//! header fields; capability kinds as in `caps`).

use alloc::{format, string::String, vec::Vec};

use super::bar::Bar;
use super::bdf::Bdf;
use super::bridge::Bridge;
use super::cap_info::{MsixInfo, SriovInfo};
use super::caps::{Capability, CapabilityKind, ExtCapability, ExtCapabilityKind};
use super::header::HEADER_TYPE_BRIDGE;

/// A present PCI function as seen during enumeration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    /// Where it lives.
    pub bdf: Bdf,
    /// Vendor ID.
    pub vendor_id: u16,
    /// Device ID.
    pub device_id: u16,
    /// 24-bit class code: base class, sub-class, programming interface.
    pub class_code: u32,
    /// Revision ID.
    pub revision: u8,
    /// Header layout (header type bits 0–6): 0 normal, 1 PCI-to-PCI bridge, 2 CardBus.
    pub header_type: u8,
    /// Header type bit 7: the device has more functions.
    pub multifunction: bool,
    /// Command register value (as restored after BAR sizing, or as set by BAR assignment).
    pub command: u16,
    /// Implemented BARs in register order.
    pub bars: Vec<Bar>,
    /// Standard capabilities in list order.
    pub capabilities: Vec<Capability>,
    /// Extended capabilities in list order (PCI Express functions only).
    pub extended_capabilities: Vec<ExtCapability>,
    /// MSI-X table location, if the function has an MSI-X capability.
    pub msix: Option<MsixInfo>,
    /// SR-IOV parameters, if the function has an SR-IOV extended capability.
    pub sriov: Option<SriovInfo>,
    /// Bridges (type 1 headers): bus numbers and windows, when they could be read.
    pub bridge: Option<Bridge>,
    /// The bridge this function sits behind (`None` on the root bus).
    pub upstream: Option<Bdf>,
    /// Human-readable descriptions of anything odd found about this function.
    pub problems: Vec<String>,
}

impl Function {
    /// A function with only its identity filled in.
    pub fn new(bdf: Bdf, vendor_id: u16, device_id: u16) -> Self {
        Self {
            bdf,
            vendor_id,
            device_id,
            class_code: 0,
            revision: 0,
            header_type: 0,
            multifunction: false,
            command: 0,
            bars: Vec::new(),
            capabilities: Vec::new(),
            extended_capabilities: Vec::new(),
            msix: None,
            sriov: None,
            bridge: None,
            upstream: None,
            problems: Vec::new(),
        }
    }

    /// True for PCI-to-PCI bridges (type 1 header).
    pub fn is_bridge(&self) -> bool {
        self.header_type == HEADER_TYPE_BRIDGE
    }

    /// Bridges: the secondary bus number (offset 0x19).
    pub fn secondary_bus(&self) -> Option<u8> {
        self.bridge.map(|bridge| bridge.buses.secondary)
    }

    /// The BAR with register index `index`, if implemented.
    pub fn bar(&self, index: u8) -> Option<&Bar> {
        self.bars.iter().find(|bar| bar.index == index)
    }

    /// The first standard capability of `kind`.
    pub fn find_capability(&self, kind: CapabilityKind) -> Option<Capability> {
        self.capabilities.iter().copied().find(|cap| cap.kind == kind)
    }

    /// The first extended capability of `kind`.
    pub fn find_extended_capability(&self, kind: ExtCapabilityKind) -> Option<ExtCapability> {
        self.extended_capabilities.iter().copied().find(|cap| cap.kind == kind)
    }

    /// Capability names as a stable lower-case comma list, e.g. `"pm,msi,pcie,msix,sriov"`:
    /// standard capabilities sorted by ID, then extended ones sorted by ID, each name once;
    /// unknown IDs appear as `cap<id>` / `ext<id>` in hex. `"none"` if there are none.
    pub fn capability_names(&self) -> String {
        let mut standard: Vec<CapabilityKind> = self.capabilities.iter().map(|c| c.kind).collect();
        standard.sort_unstable_by_key(|kind| kind.id());
        standard.dedup();
        let mut extended: Vec<ExtCapabilityKind> =
            self.extended_capabilities.iter().map(|c| c.kind).collect();
        extended.sort_unstable_by_key(|kind| kind.id());
        extended.dedup();
        let names: Vec<String> = standard
            .iter()
            .map(|kind| match kind.name() {
                Some(name) => String::from(name),
                None => format!("cap{:02x}", kind.id()),
            })
            .chain(extended.iter().map(|kind| match kind.name() {
                Some(name) => String::from(name),
                None => format!("ext{:04x}", kind.id()),
            }))
            .collect();
        if names.is_empty() {
            String::from("none")
        } else {
            names.join(",")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(id: u8, offset: u8) -> Capability {
        Capability { kind: CapabilityKind::from_id(id), offset }
    }

    #[test]
    fn capability_names_sorted_deduplicated() {
        let mut function = Function::new(Bdf::new(0, 1, 0).unwrap(), 0x1af4, 0x1041);
        assert_eq!(function.capability_names(), "none");
        function.capabilities =
            [0x11, 0x09, 0x09, 0x10, 0x05, 0x01, 0x42].iter().map(|&id| cap(id, 0x40)).collect();
        function.extended_capabilities.push(ExtCapability {
            kind: ExtCapabilityKind::SingleRootIov,
            version: 1,
            offset: 0x100,
        });
        function.extended_capabilities.push(ExtCapability {
            kind: ExtCapabilityKind::from_id(0x0abc),
            version: 1,
            offset: 0x140,
        });
        assert_eq!(function.capability_names(), "pm,msi,vendor,pcie,msix,cap42,sriov,ext0abc");
    }

    #[test]
    fn kinds_round_trip_ids() {
        assert_eq!(CapabilityKind::from_id(0x11), CapabilityKind::MsiX);
        assert_eq!(CapabilityKind::MsiX.id(), 0x11);
        assert_eq!(CapabilityKind::from_id(0x77).id(), 0x77);
        assert_eq!(ExtCapabilityKind::from_id(0x000e).name(), Some("ari"));
    }
}
