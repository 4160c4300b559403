//! PCI discovery per PHB: enumerate config space through RTAS, assign BARs where firmware did
//! not (VOF, FDT-direct), enable decode and bus mastering, and report each function.
//!
//! The PHB's `ranges` give the windows BARs may use (QEMU hw/ppc/spapr_pci.c `spapr_dt_phb`:
//! MEM32 at bus 0x8000_0000, MEM64 identity-mapped, IO 64 KiB).

use alloc::format;
use alloc::vec::Vec;
use arch_ppc64::println;
use drivers::devtree::phb::{PciSpace, PhbInfo};
use drivers::devtree::platform::Platform;
use drivers::pci::{assign_bars, enumerate, Function, Window, Windows};

use crate::boundary::rtas::Firmware;
use crate::pci_config::RtasConfigSpace;
use crate::system::Phb;
use crate::{kv, report};

/// Scans every PHB, prints the PCI part of the report and returns the PHBs with their
/// functions.
pub fn scan_all(platform: &Platform, firmware: Firmware) -> Vec<Phb<'_>> {
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
        let functions = cfg.clone().map(|cfg| scan_phb(index, info, cfg)).unwrap_or_default();
        phbs.push(Phb { index, info, cfg, functions, pe: None });
    }
    kv!("pci.count", "{}", phbs.iter().map(|p| p.functions.len()).sum::<usize>());
    phbs
}

fn windows(phb: &PhbInfo) -> Windows {
    let find = |space: PciSpace| {
        phb.ranges.iter().find(|r| r.space == space).map(|r| Window { bus_base: r.bus_addr, size: r.size })
    };
    Windows { io: find(PciSpace::Io), mem32: find(PciSpace::Mem32), mem64: find(PciSpace::Mem64) }
}

fn scan_phb(index: usize, phb: &PhbInfo, mut cfg: RtasConfigSpace) -> Vec<Function> {
    let mut functions = match enumerate(&mut cfg, 0) {
        Ok(functions) => functions,
        Err(e) => {
            println!("  PCI enumeration of {} failed: {e:?}", phb.path);
            kv!(format!("phb.{index}.error"), "enumeration failed: {e:?}");
            return Vec::new();
        }
    };
    let assignments = match assign_bars(&mut cfg, &mut functions, &windows(phb)) {
        Ok(assignments) => assignments,
        Err(e) => {
            println!("  BAR assignment on {} failed: {e:?}", phb.path);
            Vec::new()
        }
    };
    kv!(format!("phb.{index}.functions"), "{}", functions.len());
    for function in &functions {
        report::function(index, phb, function, &assignments);
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
