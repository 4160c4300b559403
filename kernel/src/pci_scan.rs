//! PCI discovery per PHB: enumerate config space through RTAS, assign BARs where firmware did
//! not (VOF, FDT-direct), enable decode and bus mastering, and report each function.
//!
//! The PHB's `ranges` give the windows BARs may use (QEMU: MEM32 at bus 0x8000_0000, MEM64
//! identity-mapped, IO 64 KiB; ../shared/docs/papr-ddw-facts.md §2.1).

use crate::{kv, report};
use alloc::vec::Vec;
use arch_ppc64::println;
use arch_ppc64::rtas::Rtas;
use drivers::devtree::phb::{PciSpace, PhbInfo};
use drivers::devtree::platform::Platform;
use drivers::pci::{assign_bars, enumerate, Function, Window, Windows};

/// Scans every PHB, prints the PCI part of the report and returns each PHB's functions (in
/// `platform.phbs` order).
pub fn scan_all(platform: &Platform, rtas: Rtas) -> Vec<Vec<Function>> {
    let mut found = Vec::new();
    let multi_tce = report::multi_tce(platform);
    let tokens = platform.rtas.as_ref();
    let read = tokens.and_then(|t| t.token("ibm,read-pci-config"));
    let write = tokens.and_then(|t| t.token("ibm,write-pci-config"));
    kv!("phb.count", "{}", platform.phbs.len());
    let mut total = 0;
    for (index, phb) in platform.phbs.iter().enumerate() {
        report::phb(index, phb, multi_tce);
        let (Some(read), Some(write)) = (read, write) else {
            println!("  cannot probe PCI: RTAS has no ibm,read-pci-config/ibm,write-pci-config token");
            found.push(Vec::new());
            continue;
        };
        let functions =
            scan_phb(index, phb, crate::pci_config::RtasConfigSpace::new(rtas, read, write, phb.buid));
        total += functions.len();
        found.push(functions);
    }
    kv!("pci.count", "{}", total);
    found
}

fn windows(phb: &PhbInfo) -> Windows {
    let find = |space: PciSpace| {
        phb.ranges.iter().find(|r| r.space == space).map(|r| Window { bus_base: r.bus_addr, size: r.size })
    };
    Windows { io: find(PciSpace::Io), mem32: find(PciSpace::Mem32), mem64: find(PciSpace::Mem64) }
}

fn scan_phb(index: usize, phb: &PhbInfo, mut cfg: crate::pci_config::RtasConfigSpace) -> Vec<Function> {
    let mut functions = match enumerate(&mut cfg, 0) {
        Ok(functions) => functions,
        Err(e) => {
            println!("  PCI enumeration of {} failed: {e:?}", phb.path);
            kv!(alloc::format!("phb.{index}.error"), "enumeration failed: {e:?}");
            return Vec::new();
        }
    };
    let assignments = match assign_bars(&mut cfg, &mut functions, &windows(phb)) {
        Ok(assignments) => assignments,
        Err(e) => {
            println!("  BAR assignment on {} failed: {e:?}", phb.path);
            alloc::vec::Vec::new()
        }
    };
    kv!(alloc::format!("phb.{index}.functions"), "{}", functions.len());
    for function in &functions {
        report::function(index, phb, function, &assignments);
    }
    for node in &phb.children {
        let found = functions
            .iter()
            .any(|f| f.bdf.bus == node.bus && f.bdf.device == node.device && f.bdf.function == node.function);
        if !found {
            kv!(
                alloc::format!("phb.{index}.dt_only"),
                "{} ({:02x}:{:02x}.{})",
                node.name,
                node.bus,
                node.device,
                node.function
            );
        }
    }
    kv!(alloc::format!("phb.{index}.config_calls"), "{}", cfg.calls);
    functions
}
