//! Translation on: an identity radix tree over RAM (cacheable) and every PHB window
//! (cache-inhibited, guarded), registered with `H_REGISTER_PROC_TBL`, interrupts relocated
//! (AIL = 3), then MSR[IR|DR] on (`drivers::mmu::radix`, `arch_ppc64::mmu`).
//!
//! Boundary module: [`HeapTables`] hands the builder zeroed, size-aligned tables from the heap
//! and stores entries big-endian through raw pointers; with the kernel in real mode (and, once
//! on, under the identity map) an address is its own physical address.
//!
//! Radix is used on CPUs that have it (POWER9 and later). QEMU 7.2 assumes a radix guest on
//! them until told otherwise, so this works after CAS (SLOF, VOF) and without it
//! (FDT-direct). POWER8 has only the hash MMU, which this kernel does not drive yet: it stays
//! in real mode there and says so.

use alloc::alloc::{alloc_zeroed, Layout};
use alloc::format;
use alloc::string::String;
use arch_ppc64::{cpu, hcall, mmu, println};
use drivers::devtree::platform::Platform;
use drivers::mmu::cas::pvr_has_radix;
use drivers::mmu::{Attr, MmuError, Radix, TableMemory};

use crate::kv;

/// Table memory on the heap (never freed: the tables live as long as the kernel).
#[derive(Debug, Default)]
struct HeapTables {
    bytes: u64,
}

impl TableMemory for HeapTables {
    fn alloc_table(&mut self, entries: usize) -> Option<u64> {
        let size = entries.checked_mul(8)?;
        let layout = Layout::from_size_align(size, size).ok()?;
        // SAFETY: the layout has a non-zero size; the allocation is leaked on purpose.
        let table = unsafe { alloc_zeroed(layout) };
        self.bytes += size as u64;
        (!table.is_null()).then_some(table as u64)
    }

    fn write(&mut self, table: u64, index: usize, value: u64) {
        // SAFETY: `table` came from `alloc_table` with more than `index` entries (the builder
        // indexes within the level's entry count); entries are stored big-endian as the MMU
        // reads them.
        unsafe { (table as *mut u64).add(index).write_volatile(value.to_be()) };
    }

    fn read(&self, table: u64, index: usize) -> u64 {
        // SAFETY: as for `write`.
        u64::from_be(unsafe { (table as *const u64).add(index).read_volatile() })
    }
}

/// What the kernel runs with after [`enable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Radix tree, translation on.
    Radix,
    /// Real mode (no translation).
    Real,
}

/// Builds the tree and turns translation on; on any failure stays in real mode and reports
/// why. `off` (`mmu=off`) skips it.
pub fn enable(platform: &Platform, off: bool) -> Mode {
    println!("== mmu");
    let why_not = if off {
        Some(String::from("mmu=off on the kernel command line"))
    } else if !pvr_has_radix(cpu::pvr()) {
        Some(format!("CPU PVR {:#010x} has no radix MMU and the hash MMU is not implemented", cpu::pvr()))
    } else {
        None
    };
    if let Some(why) = why_not {
        kv!("mmu.mode", "real");
        kv!("mmu.why", "{why}");
        return Mode::Real;
    }
    match build_and_enable(platform) {
        Ok(()) => Mode::Radix,
        Err(why) => {
            kv!("mmu.mode", "real");
            kv!("mmu.error", "{why}");
            println!("  translation stays off: {why}");
            Mode::Real
        }
    }
}

fn build_and_enable(platform: &Platform) -> Result<(), String> {
    let mut tree = Radix::new(HeapTables::default()).map_err(|e| format!("{e}"))?;
    let map = |tree: &mut Radix<HeapTables>, base: u64, size: u64, attr: Attr| -> Result<(), String> {
        tree.map(base, size, attr).map_err(|e: MmuError| format!("mapping {base:#x}+{size:#x}: {e}"))
    };
    // Everything below the end of RAM: the vectors, the image, the heap, RTAS and the FDT.
    let ram_end = platform.memory.iter().map(|r| r.end()).max().unwrap_or(0);
    map(&mut tree, 0, ram_end, Attr::Memory)?;
    let mut windows = 0;
    for phb in &platform.phbs {
        for range in &phb.ranges {
            map(&mut tree, range.cpu_addr.get(), range.size, Attr::Io)?;
            windows += 1;
        }
    }
    // Process table: 4 KiB (256 entries of 16 bytes), entry 0 for PID 0.
    let process_table = {
        let mut mem = HeapTables::default();
        let table = mem.alloc_table(512).ok_or("no memory for the process table")?;
        mem.write(table, 0, tree.process_table_entry());
        table
    };
    let leaves = tree.leaves();
    let root = tree.root();
    let table_bytes = tree.into_memory().bytes;
    hcall::register_radix_process_table(process_table, 0).map_err(|status| {
        format!("H_REGISTER_PROC_TBL(radix, {process_table:#x}) failed with status {status}")
    })?;
    hcall::set_interrupts_relocated()
        .map_err(|status| format!("H_SET_MODE(address translation mode 3) failed with status {status}"))?;
    // SAFETY: the tree identity-maps all of RAM (the kernel, its stacks and heap, the vector
    // copies) and the PHB windows; it is registered above.
    unsafe { mmu::enable_translation() };
    if !mmu::translation_on() {
        return Err(String::from("MSR[DR] is still clear after mtmsrd"));
    }
    kv!("mmu.mode", "radix");
    kv!("mmu.page_sizes", "1G,2M");
    kv!("mmu.leaves_1g", "{}", leaves.huge);
    kv!("mmu.leaves_2m", "{}", leaves.large);
    kv!("mmu.io_windows", "{windows}");
    kv!("mmu.table_bytes", "{table_bytes}");
    kv!("mmu.root", "{root:#x}");
    kv!("mmu.ail", "3");
    kv!("mmu.msr", "{:#x}", cpu::msr());
    println!(
        "  radix: RAM and {windows} PHB windows identity-mapped ({} x 1G, {} x 2M leaves), translation on",
        leaves.huge, leaves.large
    );
    Ok(())
}
