//! A function added to a running PHB (PCI DLPAR): found by enumerating the root bus again,
//! its BARs placed in the PHB's windows clear of everything already there, decode and bus
//! mastering enabled — and nothing else touched. QEMU's hot-added node has no
//! `assigned-addresses` (hw/ppc/spapr_pci.c `spapr_dt_pci_device`), so the guest programs the
//! BARs itself, as Linux's rpadlpar does through `pci_scan_child_bus`/`pci_assign_unassigned`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::assign::{assign_bars, Assignment, BridgeLayout, Windows};
use super::bdf::Bdf;
use super::config::{ConfigAccess, ConfigError, Width};
use super::enumerate::enumerate;
use super::function::Function;

/// Forwards every read, and writes only to one function: assigning the newcomer's BARs and
/// enabling it must not reprogram the devices already running.
struct OnlyWritesTo<'a, C> {
    cfg: &'a mut C,
    bdf: Bdf,
}

impl<C: ConfigAccess> ConfigAccess for OnlyWritesTo<'_, C> {
    fn read(&mut self, bdf: Bdf, offset: u16, width: Width) -> Result<u32, ConfigError> {
        self.cfg.read(bdf, offset, width)
    }

    fn write(&mut self, bdf: Bdf, offset: u16, width: Width, value: u32) -> Result<(), ConfigError> {
        match bdf == self.bdf {
            true => self.cfg.write(bdf, offset, width, value),
            false => Ok(()),
        }
    }
}

/// Finds the function at `bdf`, which has just arrived next to `present`, and assigns it.
/// Returns it with its BAR assignments; `Err` is a sentence (not found, already known, BARs
/// that do not fit).
pub fn add_function(
    cfg: &mut impl ConfigAccess,
    present: &[Function],
    windows: &Windows,
    bdf: Bdf,
) -> Result<(Function, Vec<Assignment>), String> {
    if present.iter().any(|f| f.bdf == bdf) {
        return Err(format!("{bdf} is already enumerated on this PHB"));
    }
    let found = enumerate(cfg, 0).map_err(|e| format!("enumerating the root bus again failed: {e:?}"))?;
    let new = found.into_iter().find(|f| f.bdf == bdf).ok_or(format!("no function answers at {bdf}"))?;
    let mut functions: Vec<Function> = present.to_vec();
    functions.push(new);
    let mut only_new = OnlyWritesTo { cfg, bdf };
    let assignments = assign_bars(&mut only_new, &mut functions, windows, BridgeLayout::Firmware)
        .map_err(|e| format!("assigning its BARs failed: {e:?}"))?;
    let new = functions.pop().expect("pushed above");
    if let Some(bar) = new.bars.iter().find(|b| b.size > 0 && !b.is_assigned()) {
        let why = new.problems.last().cloned().unwrap_or_default();
        return Err(format!(
            "its BAR {} ({:#x} bytes) found no room in the PHB's windows: {why}",
            bar.index, bar.size
        ));
    }
    let mine = assignments.into_iter().filter(|a| a.bdf == bdf).collect();
    Ok((new, mine))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::assign::assign_bars;
    use crate::pci::fake::FakeConfigSpace;
    use crate::pci::header::{bar_offset, Command, COMMAND};
    use crate::pci::tests_assign::qemu_windows;
    use crate::pci::tests_enumerate::{add_virtio_like, bdf};

    #[test]
    fn a_hot_added_function_gets_bars_clear_of_the_others_and_nothing_else_is_written() {
        let mut cfg = FakeConfigSpace::new();
        add_virtio_like(&mut cfg, bdf(0, 0, 0));
        add_virtio_like(&mut cfg, bdf(0, 1, 0));
        let windows = qemu_windows();
        let mut present = enumerate(&mut cfg, 0).unwrap();
        assign_bars(&mut cfg, &mut present, &windows, BridgeLayout::Kernel).unwrap();
        let before: Vec<u32> = (0..2u8)
            .flat_map(|d| [1u8, 4].map(|b| cfg.function(bdf(0, d, 0)).peek(bar_offset(b), Width::Dword)))
            .collect();
        // The hot-plug: a third function at 00:05.0.
        add_virtio_like(&mut cfg, bdf(0, 5, 0));
        let (new, assignments) = add_function(&mut cfg, &present, &windows, bdf(0, 5, 0)).unwrap();
        assert_eq!(new.bdf, bdf(0, 5, 0));
        assert_eq!(assignments.len(), 2);
        let taken: Vec<(u64, u64)> =
            present.iter().flat_map(|f| f.bars.iter().map(|b| (b.bus_addr, b.bus_addr + b.size))).collect();
        for a in &assignments {
            assert!(
                taken.iter().all(|&(start, end)| a.bus_addr + a.size <= start || a.bus_addr >= end),
                "{a:?} overlaps a present BAR {taken:x?}"
            );
        }
        let command = Command::from_bits_retain(cfg.function(bdf(0, 5, 0)).peek(COMMAND, Width::Word) as u16);
        assert!(command.contains(Command::MEMORY_SPACE | Command::BUS_MASTER), "{command:?}");
        let after: Vec<u32> = (0..2u8)
            .flat_map(|d| [1u8, 4].map(|b| cfg.function(bdf(0, d, 0)).peek(bar_offset(b), Width::Dword)))
            .collect();
        assert_eq!(before, after, "the running functions' BARs were not touched");
        assert!(add_function(&mut cfg, &present, &windows, bdf(0, 9, 0))
            .unwrap_err()
            .contains("no function"));
        assert!(add_function(&mut cfg, &present, &windows, bdf(0, 1, 0)).unwrap_err().contains("already"));
    }
}
