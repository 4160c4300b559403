//! Translation on: an identity radix tree over RAM (cacheable) and every PHB window
//! (cache-inhibited, guarded), registered with `H_REGISTER_PROC_TBL`, interrupts relocated
//! (AIL = 3), then MSR[IR|DR] on (`drivers::mmu::radix`, `arch_ppc64::mmu`).
//!
//! The tables come from [`HeapTables`] (zeroed, size-aligned heap memory, never freed); this
//! module makes the hypercalls that register them and switches translation on, each `unsafe`
//! step justified by the identity map it has just built.
//!
//! Radix is used on CPUs that have it (POWER9 and later). QEMU 7.2 assumes a radix guest on
//! them until told otherwise, so this works after CAS (SLOF, VOF) and without it
//! (FDT-direct). POWER8 has only the hash MMU: the same identity map is made of bolted
//! 16 MiB entries (`H_ENTER`) in the hypervisor's hashed page table (size from
//! `ibm,pft-size`) and 1 TiB SLB entries (`drivers::mmu::hash`), one more SLB entry aliasing
//! segment 0 at 0xc000… for the relocated interrupt vectors.

use alloc::format;
use alloc::string::String;
use arch_ppc64::hcall::HcallStatus;
use arch_ppc64::{cpu, hcall, mmu, println};
use drivers::cmdline::MmuPolicy;
use drivers::devtree::platform::Platform;
use drivers::mmu::cas::{mmu_for_pvr, CasMmu};
use drivers::mmu::{hash, Attr, MmuError, Radix, TableMemory};

use super::memory::HeapTables;

/// The radix tree in use, kept so that windows hot-plugged later (a PHB added in serving mode)
/// can be mapped into it.
static LIVE_TREE: spin::Mutex<Option<Radix<HeapTables>>> = spin::Mutex::new(None);

/// Identity-maps a PHB window hot-plugged after boot (cache-inhibited, guarded), before
/// anything touches it. Only the radix MMU is extended; in real mode nothing is needed.
pub fn map_io_window(mode: Mode, base: u64, size: u64) -> Result<(), String> {
    match mode {
        Mode::Real => return Ok(()),
        Mode::Hash => return Err(String::from("the hash MMU maps only the boot-time PHB windows")),
        Mode::Radix => {}
    }
    let mut live = LIVE_TREE.lock();
    let tree = live.as_mut().ok_or("no radix tree is in use")?;
    tree.map(base, size, Attr::Io).map_err(|e| format!("mapping {base:#x}+{size:#x}: {e}"))?;
    // New entries only replace invalid ones, which the MMU does not cache; `sync` orders the
    // table stores before the first access through them.
    cpu::sync();
    Ok(())
}
use crate::kv;

/// What the kernel runs with after [`enable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Radix tree, translation on.
    Radix,
    /// Hashed page table, translation on.
    Hash,
    /// Real mode (no translation).
    Real,
}

/// Builds the tree and turns translation on; on any failure stays in real mode and reports
/// why. `mmu=off` skips it.
pub fn enable(platform: &Platform, policy: MmuPolicy) -> Mode {
    println!("== mmu");
    if policy == MmuPolicy::Off {
        kv!("mmu.mode", "real");
        kv!("mmu.why", "mmu=off on the kernel command line");
        return Mode::Real;
    }
    let (mode, result) = match mmu_for_pvr(cpu::pvr()) {
        CasMmu::Radix => (Mode::Radix, build_and_enable(platform)),
        CasMmu::Hash => (Mode::Hash, hash_enable(platform)),
    };
    match result {
        Ok(()) => mode,
        Err(why) => {
            kv!("mmu.mode", "real");
            kv!("mmu.error", "{why}");
            println!("  translation stays off: {why}");
            Mode::Real
        }
    }
}

/// RAM from 0 and every PHB window: what both MMUs map.
fn mapped_ranges(platform: &Platform) -> alloc::vec::Vec<(u64, u64, Attr)> {
    let ram_end = platform.memory.iter().map(|r| r.end()).max().unwrap_or(0);
    let mut ranges = alloc::vec![(0, ram_end, Attr::Memory)];
    for phb in &platform.phbs {
        ranges.extend(phb.ranges.iter().map(|r| (r.cpu_addr.get(), r.size, Attr::Io)));
    }
    ranges
}

fn hash_enable(platform: &Platform) -> Result<(), String> {
    let shift = platform.cpus.pft_shift.ok_or("the CPU node has no ibm,pft-size (hashed page table size)")?;
    if platform.cpus.hash_16m_pages == Some(false) {
        return Err(String::from(
            "the hypervisor offers no 16 MiB hash pages (ibm,segment-page-sizes; QEMU machine option \
             cap-hpt-max-page-size=16M enables them)",
        ));
    }
    let ranges = mapped_ranges(platform);
    let (mut entries, mut secondary) = (0u64, 0u64);
    for &(base, size, attr) in &ranges {
        for page in hash::pages(base, size) {
            let hpte = hash::hpte(page, attr, shift);
            // SAFETY: the entry identity-maps a 16 MiB page of RAM or of a PHB window with the
            // attributes `drivers::mmu::hash` gives that range (cacheable RAM, guarded I/O).
            match unsafe { hcall::enter_hpte(hpte.group, hpte.v, hpte.r) } {
                Ok(_) => {}
                Err(HcallStatus::PTEG_FULL) => {
                    // SAFETY: as above, in the secondary group.
                    unsafe { hcall::enter_hpte(hpte.secondary_group, hpte.secondary(), hpte.r) }.map_err(
                        |status| format!("H_ENTER of {page:#x} failed in both PTE groups (status {status})"),
                    )?;
                    secondary += 1;
                }
                Err(status) => return Err(format!("H_ENTER of {page:#x} failed with status {status}")),
            }
            entries += 1;
        }
    }
    let spans: alloc::vec::Vec<(u64, u64)> = ranges.iter().map(|&(b, s, _)| (b, s)).collect();
    let mut slb: alloc::vec::Vec<(u64, u64)> = hash::segments(&spans)
        .iter()
        .enumerate()
        .map(|(i, &esid)| hash::slb_entry(esid << hash::SEGMENT_SHIFT, esid, i as u64))
        .collect();
    // Interrupts relocated by AIL 3 run at 0xc000…: the same translation as segment 0.
    slb.push(hash::slb_entry(0xc000_0000_0000_0000, 0, slb.len() as u64));
    if slb.len() > 32 {
        return Err(format!("{} segments do not fit POWER8's 32 SLB entries", slb.len()));
    }
    // SAFETY: the vectors are at 0x4000 (installed at boot) and the SLB entry just added maps
    // 0xc000… onto segment 0, which the bolted entries identity-map.
    unsafe { hcall::set_interrupts_relocated() }
        .map_err(|status| format!("H_SET_MODE(address translation mode 3) failed with status {status}"))?;
    // SAFETY: translation is off; the entries are installed before it goes on.
    unsafe { mmu::load_slb(&slb) };
    // SAFETY: the bolted entries above identity-map RAM (kernel, stacks, heap, vectors) and
    // the PHB windows; the SLB covers their segments and the interrupt alias.
    unsafe { mmu::enable_hash_translation() };
    if !mmu::translation_on() {
        return Err(String::from("MSR[DR] is still clear after mtmsrd"));
    }
    kv!("mmu.mode", "hash");
    kv!("mmu.page_sizes", "16M");
    kv!("mmu.hpt_shift", "{shift}");
    kv!("mmu.hptes", "{entries}");
    kv!("mmu.hptes_secondary", "{secondary}");
    kv!("mmu.slb_entries", "{}", slb.len());
    kv!("mmu.io_windows", "{}", ranges.len() - 1);
    kv!("mmu.ail", "3");
    kv!("mmu.msr", "{:#x}", cpu::msr());
    println!(
        "  hash: {entries} bolted 16M entries in a 2^{shift}-byte table, {} SLB entries, translation on",
        slb.len()
    );
    Ok(())
}

fn build_and_enable(platform: &Platform) -> Result<(), String> {
    let mut tree = Radix::new(HeapTables::default()).map_err(|e| format!("{e}"))?;
    let map = |tree: &mut Radix<HeapTables>, base: u64, size: u64, attr: Attr| -> Result<(), String> {
        tree.map(base, size, attr).map_err(|e: MmuError| format!("mapping {base:#x}+{size:#x}: {e}"))
    };
    // Everything below the end of RAM (the vectors, the image, the heap, RTAS and the FDT)
    // and every PHB window.
    let ranges = mapped_ranges(platform);
    for &(base, size, attr) in &ranges {
        map(&mut tree, base, size, attr)?;
    }
    let windows = ranges.len() - 1;
    // Memory hot-plugged later (memory DLPAR in serving mode) is mapped from the start: an
    // entry for guest-physical memory not yet present is never touched until it is.
    let ram_end = ranges.first().map_or(0, |r| r.1);
    let hotplug_end = platform.max_possible_ram_addr();
    if hotplug_end > ram_end {
        map(&mut tree, ram_end, hotplug_end - ram_end, Attr::Memory)?;
        kv!("mmu.hotplug_room", "{ram_end:#x}+{:#x}", hotplug_end - ram_end);
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
    let table_bytes = tree.memory().bytes;
    // SAFETY: the process table is a 4 KiB page from `HeapTables` (never freed) whose entry 0
    // points at the tree just built, which identity-maps RAM and every PHB window.
    unsafe { hcall::register_radix_process_table(process_table, 0) }.map_err(|status| {
        format!("H_REGISTER_PROC_TBL(radix, {process_table:#x}) failed with status {status}")
    })?;
    // SAFETY: the vectors are at 0x4000 (installed at boot), and the radix tree maps
    // 0xc000… (quadrant 3) onto the same identity map.
    unsafe { hcall::set_interrupts_relocated() }
        .map_err(|status| format!("H_SET_MODE(address translation mode 3) failed with status {status}"))?;
    // SAFETY: the tree identity-maps all of RAM (the kernel, its stacks and heap, the vector
    // copies) and the PHB windows; it is registered above.
    unsafe { mmu::enable_translation() };
    if !mmu::translation_on() {
        return Err(String::from("MSR[DR] is still clear after mtmsrd"));
    }
    *LIVE_TREE.lock() = Some(tree);
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
