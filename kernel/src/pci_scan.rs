//! PCI discovery per PHB: enumerate config space through RTAS, assign BARs where firmware did
//! not, enable decode and bus mastering, and report each function.
//!
//! Behind PCI-to-PCI bridges the firmware path decides who lays things out
//! (`drivers::pci::BridgeLayout`): SLOF numbers the buses, opens the bridge windows and places
//! the BARs, and the kernel keeps that and checks it; under VOF and FDT-direct nobody does, so
//! the kernel numbers the buses, sizes and opens the windows and places every BAR behind a
//! bridge. The PHB's `ranges` give the windows everything must fit in (QEMU hw/ppc/spapr_pci.c
//! `spapr_dt_phb`: MEM32 at bus 0x8000_0000, MEM64 identity-mapped, IO 64 KiB).
//!
//! QEMU 7.2 numbers the buses behind bridges itself when it builds the device tree
//! (`spapr_phb_pci_enumerate`, depth first) and describes the functions behind them as nodes
//! nested in the bridges' (`spapr_dt_pci_bus`), in the tree VOF serves and in the one handed
//! over in r3 alike; the kernel's own numbering follows the same order, so those nodes match
//! (`pci.N.BB:DD.F.dt`). A function without a node is reported `dt=missing` and its PE is the
//! PHB's (`drivers::iommu::PeSetUp::for_phb` walks up from the node it has, or takes the PHB).

use alloc::format;
use alloc::vec::Vec;
use arch_ppc64::println;
use drivers::devtree::phb::{PciSpace, PhbInfo};
use drivers::devtree::platform::Platform;
use drivers::pci::{assign_bars, enumerate_for, BridgeLayout, Function, Window, Windows};

use crate::boundary::rtas::Firmware;
use crate::pci_config::RtasConfigSpace;
use crate::system::Phb;
use crate::{kv, report};

/// Scans every PHB (bridges laid out as `layout` says), prints the PCI part of the report and
/// returns the PHBs with their functions.
pub fn scan_all(platform: &Platform, firmware: Firmware, layout: BridgeLayout) -> Vec<Phb<'_>> {
    let tokens = platform.rtas.as_ref();
    let read = tokens.and_then(|t| t.token("ibm,read-pci-config"));
    let write = tokens.and_then(|t| t.token("ibm,write-pci-config"));
    let multi_tce = platform.multi_tce();
    kv!("phb.count", "{}", platform.phbs.len());
    let mut phbs = Vec::new();
    for (index, info) in platform.phbs.iter().enumerate() {
        report::phb(index, info, multi_tce);
        let cfg = match (read, write) {
            (Some(read), Some(write)) => Some(RtasConfigSpace::new(firmware, read, write, info.buid)),
            _ => {
                println!("  cannot probe PCI: RTAS has no ibm,read-pci-config/ibm,write-pci-config token");
                None
            }
        };
        let functions = cfg.clone().map(|cfg| scan_phb(index, info, cfg, layout)).unwrap_or_default();
        phbs.push(Phb { index, info, cfg, functions, pe: None });
    }
    kv!("pci.count", "{}", phbs.iter().map(|p| p.functions.len()).sum::<usize>());
    phbs
}

/// A PHB added at run time (PHB DLPAR), numbered `index`: scanned and laid out by the kernel,
/// as under VOF (nothing has assigned anything behind a hot-added PHB).
pub fn scan_added<'p>(index: usize, info: &'p PhbInfo, platform: &Platform, firmware: Firmware) -> Phb<'p> {
    report::phb(index, info, platform.multi_tce());
    let tokens = platform.rtas.as_ref();
    let read = tokens.and_then(|t| t.token("ibm,read-pci-config"));
    let write = tokens.and_then(|t| t.token("ibm,write-pci-config"));
    let cfg = match (read, write) {
        (Some(read), Some(write)) => Some(RtasConfigSpace::new(firmware, read, write, info.buid)),
        _ => None,
    };
    let functions =
        cfg.clone().map(|cfg| scan_phb(index, info, cfg, BridgeLayout::Kernel)).unwrap_or_default();
    Phb { index, info, cfg, functions, pe: None }
}

/// The PHB's windows as BAR assignment sees them.
pub fn windows(phb: &PhbInfo) -> Windows {
    let find = |space: PciSpace| {
        phb.ranges.iter().find(|r| r.space == space).map(|r| Window { bus_base: r.bus_addr, size: r.size })
    };
    Windows { io: find(PciSpace::Io), mem32: find(PciSpace::Mem32), mem64: find(PciSpace::Mem64) }
}

fn scan_phb(index: usize, phb: &PhbInfo, mut cfg: RtasConfigSpace, layout: BridgeLayout) -> Vec<Function> {
    let mut functions = match enumerate_for(&mut cfg, 0, layout) {
        Ok(functions) => functions,
        Err(e) => {
            println!("  PCI enumeration of {} failed: {e:?}", phb.path);
            kv!(format!("phb.{index}.error"), "enumeration failed: {e:?}");
            return Vec::new();
        }
    };
    let assignments = match assign_bars(&mut cfg, &mut functions, &windows(phb), layout) {
        Ok(assignments) => assignments,
        Err(e) => {
            println!("  BAR assignment on {} failed: {e:?}", phb.path);
            Vec::new()
        }
    };
    kv!(format!("phb.{index}.functions"), "{}", functions.len());
    let bridges = functions.iter().filter(|f| f.is_bridge()).count();
    kv!(format!("phb.{index}.bridges"), "{bridges}");
    if bridges > 0 {
        kv!(format!("phb.{index}.bridge_layout"), "{}", report::layout_name(layout));
    }
    for function in &functions {
        report::function(index, phb, function, &assignments);
        report::bridge(index, phb, function, layout);
    }
    for node in &phb.children {
        let found = functions
            .iter()
            .any(|f| f.bdf.bus == node.bus && f.bdf.device == node.device && f.bdf.function == node.function);
        if !found {
            kv!(
                format!("phb.{index}.dt_only"),
                "{} ({:02x}:{:02x}.{})",
                node.name,
                node.bus,
                node.device,
                node.function
            );
        }
    }
    kv!(format!("phb.{index}.config_calls"), "{}", cfg.calls());
    functions
}
