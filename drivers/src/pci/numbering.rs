//! Bus numbering where the kernel owns the layout (VOF, FDT-direct): a depth-first scan that
//! gives every bridge its primary, secondary and subordinate bus numbers as it goes.
//!
//! A type 1 configuration cycle for bus N reaches the bridge whose secondary..=subordinate
//! range holds N (PCI-to-PCI Bridge Architecture 1.2 §3.2.5.3–4), so the numbers are handed out
//! depth first: a bridge gets the next free number as its secondary bus and 0xff as its
//! subordinate while the buses behind it are scanned, then the highest number used below it.
//! Before any bridge on a bus is numbered, every bridge on that bus has its numbers cleared, so
//! two bridges with stale, overlapping ranges never both forward (the two passes of Linux
//! `drivers/pci/probe.c : pci_scan_bridge_extend` when it reassigns). The order — slots in
//! ascending order, depth first — is the one QEMU numbers its buses in
//! (`hw/ppc/spapr_pci.c : spapr_phb_pci_enumerate_bridge`), so the bus numbers in the device
//! tree QEMU wrote come out the same.

use alloc::{format, vec::Vec};

use super::bdf::Bdf;
use super::bridge::{write_bus_numbers, BusNumbers};
use super::config::ConfigAccess;
use super::enumerate::scan_bus;
use super::error::PciError;
use super::function::Function;

/// Bridges nested deeper than this are numbered but the buses behind them are not scanned (a
/// guard for the recursion against hostile configuration space).
pub const MAX_BRIDGE_DEPTH: usize = 16;

/// Highest subordinate number while a bridge's buses are being scanned: everything above its
/// secondary bus is routed through it.
const OPEN_SUBORDINATE: u8 = 0xff;

/// Enumerates every function on `root_bus` and below it, numbering the bridges' buses depth
/// first (see the module documentation). Functions come in scan order: a bus's functions, then
/// the buses behind its first bridge, and so on; a bridge always comes before what is behind
/// it. Fails only when the root bus yields no function and some vendor-ID read failed with an
/// error that does not mean "absent".
pub fn enumerate_numbering(cfg: &mut impl ConfigAccess, root_bus: u8) -> Result<Vec<Function>, PciError> {
    let mut functions = Vec::new();
    let mut last = root_bus;
    let root_failure = scan_numbering(cfg, root_bus, None, 0, &mut last, &mut functions);
    match root_failure {
        Some(error) if functions.is_empty() => Err(error),
        _ => Ok(functions),
    }
}

/// Scans `bus` (behind `upstream`, `depth` bridges below the root) and numbers its bridges.
fn scan_numbering(
    cfg: &mut impl ConfigAccess,
    bus: u8,
    upstream: Option<Bdf>,
    depth: usize,
    last: &mut u8,
    out: &mut Vec<Function>,
) -> Option<PciError> {
    let first = out.len();
    let failure = scan_bus(cfg, bus, upstream, out);
    let bridges: Vec<usize> = (first..out.len()).filter(|&i| out[i].bridge.is_some()).collect();
    for &index in &bridges {
        set_bus_numbers(cfg, &mut out[index], BusNumbers { primary: bus, secondary: 0, subordinate: 0 });
    }
    for index in bridges {
        number_bridge(cfg, index, depth, last, out);
    }
    failure
}

/// Gives the bridge at `out[index]` the next bus number and scans what is behind it.
fn number_bridge(
    cfg: &mut impl ConfigAccess,
    index: usize,
    depth: usize,
    last: &mut u8,
    out: &mut Vec<Function>,
) {
    let (bdf, bus) = (out[index].bdf, out[index].bdf.bus);
    if depth >= MAX_BRIDGE_DEPTH {
        let problem =
            format!("bridges nested more than {MAX_BRIDGE_DEPTH} deep: the buses behind it are not scanned");
        out[index].problems.push(problem);
        return;
    }
    let Some(secondary) = last.checked_add(1) else {
        out[index].problems.push("no bus number left: the buses behind it are not scanned".into());
        return;
    };
    let scanning = BusNumbers { primary: bus, secondary, subordinate: OPEN_SUBORDINATE };
    if !set_bus_numbers(cfg, &mut out[index], scanning) {
        return;
    }
    *last = secondary;
    scan_numbering(cfg, secondary, Some(bdf), depth + 1, last, out);
    set_bus_numbers(cfg, &mut out[index], BusNumbers { subordinate: *last, ..scanning });
}

/// Writes `buses` into the bridge and records them; false (with a problem) if the write failed.
fn set_bus_numbers(cfg: &mut impl ConfigAccess, function: &mut Function, buses: BusNumbers) -> bool {
    match write_bus_numbers(cfg, function.bdf, buses) {
        Ok(()) => {
            if let Some(bridge) = function.bridge.as_mut() {
                bridge.buses = buses;
            }
            true
        }
        Err(error) => {
            let problem = format!(
                "writing bus numbers {:02x}/{:02x}-{:02x} failed ({error})",
                buses.primary, buses.secondary, buses.subordinate
            );
            function.problems.push(problem);
            false
        }
    }
}
