//! Bus enumeration: find every function below a root bus and read what the kernel needs.
//!
//! Procedure (PCI Local Bus 3.0 §6.1, §6.2.5; PCI-to-PCI Bridge Architecture 1.2 §3.2):
//! - probe devices 0..=31; function 0 first, functions 1..=7 only when function 0's header type
//!   has the multi-function bit (bit 7);
//! - a vendor ID of 0xffff or 0x0000, [`ConfigError::NoDevice`] or RTAS status −1 means "no
//!   function" (QEMU `spapr_pci.c : rtas_ibm_read_pci_config` returns −1 for an absent device,
//!   LoPAR says all ones); any other error on that read is logged and the slot skipped;
//! - type 0 headers have 6 BARs, type 1 (bridge) headers 2 BARs, bus numbers and windows
//!   ([`super::bridge`]); [`enumerate`] follows the secondary bus numbers as programmed (QEMU
//!   pseries numbers bridges itself, `hw/ppc/spapr_pci.c : spapr_phb_pci_enumerate`, and SLOF
//!   keeps or redoes that), breadth first; a visited-bus set stops bridge loops and bounds the
//!   scan at 256 buses. [`super::numbering`] numbers the buses itself instead;
//! - capabilities when Status bit 4 is set, extended capabilities when there is a PCI Express
//!   capability, MSI-X and SR-IOV parsed from their capabilities.

use alloc::{collections::VecDeque, format, vec::Vec};

use super::assign::BridgeLayout;
use super::bar::probe_bars;
use super::bdf::{Bdf, DEVICES_PER_BUS, FUNCTIONS_PER_DEVICE};
use super::bridge::read_bridge;
use super::cap_info::{read_msix, read_sriov};
use super::caps::{walk_capabilities, walk_extended_capabilities, CapabilityKind, ExtCapabilityKind};
use super::config::{ConfigAccess, ConfigError};
use super::error::PciError;
use super::function::Function;
use super::header::{
    Status, BARS_BRIDGE, BARS_NORMAL, COMMAND, HEADER_TYPE, HEADER_TYPE_BRIDGE, HEADER_TYPE_LAYOUT_MASK,
    HEADER_TYPE_MULTIFUNCTION, HEADER_TYPE_NORMAL, REVISION_ID, STATUS, VENDOR_ID,
};
use super::numbering::enumerate_numbering;

/// Set of bus numbers already scanned or queued.
pub(super) struct BusSet([u64; 4]);

impl BusSet {
    /// An empty set.
    pub(super) const fn new() -> Self {
        Self([0; 4])
    }

    /// Adds `bus`; false if it was already present.
    pub(super) fn insert(&mut self, bus: u8) -> bool {
        let (word, bit) = (usize::from(bus / 64), 1u64 << (bus % 64));
        let fresh = self.0[word] & bit == 0;
        self.0[word] |= bit;
        fresh
    }
}

/// Enumerates every function on `root_bus` and, through bridges, on the buses below it,
/// following the bus numbers the bridges already hold.
///
/// Functions come bus by bus (root bus first, then secondary buses in discovery order), in
/// device/function order within a bus. Per-function trouble is recorded in
/// [`Function::problems`]. Fails only when the root bus yields no function and some vendor-ID
/// read failed with an error that does not mean "absent".
pub fn enumerate(cfg: &mut impl ConfigAccess, root_bus: u8) -> Result<Vec<Function>, PciError> {
    let mut functions = Vec::new();
    let mut seen = BusSet::new();
    seen.insert(root_bus);
    let mut pending = VecDeque::from([(root_bus, None)]);
    let mut root_failure = None;
    while let Some((bus, upstream)) = pending.pop_front() {
        let first_new = functions.len();
        let failure = scan_bus(cfg, bus, upstream, &mut functions);
        if bus == root_bus {
            root_failure = failure;
        }
        for function in &mut functions[first_new..] {
            queue_secondary_bus(function, &mut seen, &mut pending);
        }
    }
    match root_failure {
        Some(error) if functions.is_empty() => Err(error),
        _ => Ok(functions),
    }
}

/// Enumerates `root_bus` and below it as `layout` says: following firmware's bus numbers
/// ([`enumerate`]) or numbering the buses ([`enumerate_numbering`]).
pub fn enumerate_for(
    cfg: &mut impl ConfigAccess,
    root_bus: u8,
    layout: BridgeLayout,
) -> Result<Vec<Function>, PciError> {
    match layout {
        BridgeLayout::Firmware => enumerate(cfg, root_bus),
        BridgeLayout::Kernel => enumerate_numbering(cfg, root_bus),
    }
}

/// Queues a bridge's secondary bus unless it is unassigned or already seen.
fn queue_secondary_bus(
    function: &mut Function,
    seen: &mut BusSet,
    pending: &mut VecDeque<(u8, Option<Bdf>)>,
) {
    let Some(bus) = function.secondary_bus() else {
        return;
    };
    if bus == 0 {
        function.problems.push("secondary bus number not assigned".into());
    } else if seen.insert(bus) {
        pending.push_back((bus, Some(function.bdf)));
    } else {
        function.problems.push(format!("secondary bus {bus:02x} already scanned: not followed"));
    }
}

/// Scans one bus, appending present functions (behind `upstream`); returns the first
/// non-absence failure.
pub(super) fn scan_bus(
    cfg: &mut impl ConfigAccess,
    bus: u8,
    upstream: Option<Bdf>,
    out: &mut Vec<Function>,
) -> Option<PciError> {
    let mut first_failure = None;
    for device in 0..DEVICES_PER_BUS {
        for function in 0..FUNCTIONS_PER_DEVICE {
            let bdf = Bdf { bus, device, function };
            match probe_function(cfg, bdf) {
                Ok(Some(mut found)) => {
                    let more = function == 0 && found.multifunction;
                    found.upstream = upstream;
                    out.push(found);
                    if function == 0 && !more {
                        break;
                    }
                }
                Ok(None) if function == 0 => break,
                Ok(None) => {}
                Err(error) => {
                    log::warn!("pci {bdf}: vendor ID read failed: {error}");
                    first_failure.get_or_insert(PciError::Config { bdf, offset: VENDOR_ID, error });
                    if function == 0 {
                        break;
                    }
                }
            }
        }
    }
    first_failure
}

/// Reads one function, `Ok(None)` if nothing answers at `bdf`.
fn probe_function(cfg: &mut impl ConfigAccess, bdf: Bdf) -> Result<Option<Function>, ConfigError> {
    let ids = match cfg.read_u32(bdf, VENDOR_ID) {
        Ok(ids) => ids,
        Err(error) if error.means_absent() => return Ok(None),
        Err(error) => return Err(error),
    };
    let vendor_id = (ids & 0xffff) as u16;
    if vendor_id == 0xffff || vendor_id == 0 {
        return Ok(None);
    }
    let mut function = Function::new(bdf, vendor_id, (ids >> 16) as u16);
    read_identity(cfg, &mut function);
    read_layout(cfg, &mut function);
    read_capabilities(cfg, &mut function);
    Ok(Some(function))
}

/// Class code, revision and header type.
fn read_identity(cfg: &mut impl ConfigAccess, function: &mut Function) {
    let bdf = function.bdf;
    match cfg.read_u32(bdf, REVISION_ID) {
        Ok(value) => {
            function.revision = (value & 0xff) as u8;
            function.class_code = value >> 8;
        }
        Err(error) => function.problems.push(format!("class code unreadable ({error})")),
    }
    match cfg.read_u8(bdf, HEADER_TYPE) {
        Ok(value) => {
            function.header_type = value & HEADER_TYPE_LAYOUT_MASK;
            function.multifunction = value & HEADER_TYPE_MULTIFUNCTION != 0;
        }
        Err(error) => function.problems.push(format!("header type unreadable ({error})")),
    }
}

/// BARs (and for bridges the secondary bus), then the Command value left after sizing.
fn read_layout(cfg: &mut impl ConfigAccess, function: &mut Function) {
    let bdf = function.bdf;
    match function.header_type {
        HEADER_TYPE_NORMAL => {
            function.bars = probe_bars(cfg, bdf, BARS_NORMAL, &mut function.problems);
        }
        HEADER_TYPE_BRIDGE => {
            function.bars = probe_bars(cfg, bdf, BARS_BRIDGE, &mut function.problems);
            match read_bridge(cfg, bdf) {
                Ok(bridge) => function.bridge = Some(bridge),
                Err(error) => function.problems.push(format!("bridge registers unreadable ({error})")),
            }
        }
        other => function.problems.push(format!("unsupported header type {other:#04x}: not decoded")),
    }
    match cfg.read_u16(bdf, COMMAND) {
        Ok(command) => function.command = command,
        Err(error) => function.problems.push(format!("command unreadable ({error})")),
    }
}

/// Capability lists, MSI-X and SR-IOV (headers of type 0 and 1 only).
fn read_capabilities(cfg: &mut impl ConfigAccess, function: &mut Function) {
    if function.header_type > HEADER_TYPE_BRIDGE {
        return;
    }
    let bdf = function.bdf;
    let status = match cfg.read_u16(bdf, STATUS) {
        Ok(status) => Status::from_bits_retain(status),
        Err(error) => {
            function.problems.push(format!("status unreadable ({error})"));
            return;
        }
    };
    if !status.contains(Status::CAPABILITIES_LIST) {
        return;
    }
    function.capabilities = walk_capabilities(cfg, bdf, &mut function.problems);
    read_msix_capability(cfg, function);
    if function.find_capability(CapabilityKind::PciExpress).is_some() {
        function.extended_capabilities = walk_extended_capabilities(cfg, bdf, &mut function.problems);
        if let Some(cap) = function.find_extended_capability(ExtCapabilityKind::SingleRootIov) {
            match read_sriov(cfg, bdf, cap.offset) {
                Ok(info) => function.sriov = Some(info),
                Err(error) => function.problems.push(format!("SR-IOV unreadable ({error})")),
            }
        }
    }
}

/// Parses the MSI-X capability and checks that its table and PBA BARs exist.
fn read_msix_capability(cfg: &mut impl ConfigAccess, function: &mut Function) {
    let Some(cap) = function.find_capability(CapabilityKind::MsiX) else {
        return;
    };
    match read_msix(cfg, function.bdf, u16::from(cap.offset)) {
        Ok(info) => {
            for (what, bar) in [("table", info.table_bar), ("PBA", info.pba_bar)] {
                if function.bar(bar).is_none() {
                    let problem = format!("MSI-X {what} in BAR{bar}, which is not implemented");
                    function.problems.push(problem);
                }
            }
            function.msix = Some(info);
        }
        Err(error) => function.problems.push(format!("MSI-X unreadable ({error})")),
    }
}
