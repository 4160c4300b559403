//! Firmware's layout behind bridges (as SLOF leaves it) against [`FakeConfigSpace`]: kept as
//! it is, and every bus number or window that would not route reported in words.

use super::assign::{assign_bars, BarOrigin, BridgeLayout, Window};
use super::bdf::Bdf;
use super::bridge::{read_bridge, write_window, WindowKind};
use super::enumerate::enumerate;
use super::fake::FakeConfigSpace;
use super::function::Function;
use super::header::{Command, PRIMARY_BUS};
use super::tests_assign::{command_of, qemu_windows};
use super::tests_enumerate::{add_virtio_like, bdf};

const MIB: u64 = 1 << 20;
const MEM: Window = Window { bus_base: 0x8000_0000, size: MIB };
const PREF: Window = Window { bus_base: 0x2100_0000_0000, size: MIB };

/// A bridge at `at` from bus `at.bus` to `secondary` with windows as firmware would open them.
fn firmware_bridge(cfg: &mut FakeConfigSpace, at: Bdf, secondary: u8, memory: Window, prefetchable: Window) {
    cfg.add_function(at, 0x1b36, 0x0001, 0x06_04_00).make_bridge(at.bus, secondary);
    let bridge = read_bridge(cfg, at).unwrap();
    write_window(cfg, at, &bridge, WindowKind::Memory, Some(memory)).unwrap();
    write_window(cfg, at, &bridge, WindowKind::Prefetchable, Some(prefetchable)).unwrap();
    write_window(cfg, at, &bridge, WindowKind::Io, None).unwrap();
}

/// A virtio-like function at `at` with firmware's BAR addresses.
fn firmware_virtio(cfg: &mut FakeConfigSpace, at: Bdf, bar1: u64, bar4: u64) {
    add_virtio_like(cfg, at);
    cfg.function_mut(at).set_bar_address(1, bar1).set_bar_address(4, bar4);
}

/// Overwrites the primary, secondary and subordinate bus numbers (`0xSUBSECPRI`).
fn set_buses(cfg: &mut FakeConfigSpace, at: Bdf, value: u32) {
    cfg.function_mut(at).poke(PRIMARY_BUS, value, super::config::Width::Dword);
}

fn problems_of(functions: &[Function], at: Bdf) -> Vec<String> {
    functions.iter().find(|f| f.bdf == at).unwrap().problems.clone()
}

/// The problems keeping firmware's layout records on `at`.
fn kept_problems(cfg: &mut FakeConfigSpace, at: Bdf) -> Vec<String> {
    problems_of(&keep(cfg).0, at)
}

fn keep(cfg: &mut FakeConfigSpace) -> (Vec<Function>, Vec<super::assign::Assignment>) {
    let mut functions = enumerate(cfg, 0).unwrap();
    let assignments = assign_bars(cfg, &mut functions, &qemu_windows(), BridgeLayout::Firmware).unwrap();
    (functions, assignments)
}

#[test]
fn a_sound_firmware_layout_is_kept_and_decoded() {
    let mut cfg = FakeConfigSpace::new();
    firmware_bridge(&mut cfg, bdf(0, 2, 0), 1, MEM, PREF);
    firmware_virtio(&mut cfg, bdf(1, 1, 0), MEM.bus_base, PREF.bus_base);
    let before = read_bridge(&mut cfg, bdf(0, 2, 0)).unwrap();
    let (functions, assignments) = keep(&mut cfg);
    for f in &functions {
        assert!(f.problems.is_empty(), "{}: {:?}", f.bdf, f.problems);
    }
    assert!(assignments.iter().all(|a| a.origin == BarOrigin::Firmware));
    assert_eq!(assignments.len(), 2);
    assert_eq!(read_bridge(&mut cfg, bdf(0, 2, 0)).unwrap(), before, "bus numbers and windows untouched");
    assert_eq!(functions[0].bridge, Some(before));
    let wanted = Command::MEMORY_SPACE | Command::BUS_MASTER;
    assert_eq!(command_of(&cfg, bdf(0, 2, 0)), wanted, "the bridge forwards memory and DMA");
    assert_eq!(command_of(&cfg, bdf(1, 1, 0)), wanted);
}

#[test]
fn root_bars_are_placed_clear_of_firmware_bridge_windows() {
    let mut cfg = FakeConfigSpace::new();
    add_virtio_like(&mut cfg, bdf(0, 1, 0));
    firmware_bridge(&mut cfg, bdf(0, 2, 0), 1, MEM, PREF);
    firmware_virtio(&mut cfg, bdf(1, 1, 0), MEM.bus_base, PREF.bus_base);
    let (functions, _) = keep(&mut cfg);
    let root = functions.iter().find(|f| f.bdf == bdf(0, 1, 0)).unwrap();
    assert_eq!(root.bar(1).unwrap().bus_addr, MEM.bus_base + MIB, "after the bridge's memory window");
    assert_eq!(root.bar(4).unwrap().bus_addr, PREF.bus_base + MIB, "after its prefetchable window");
}

#[test]
fn a_bar_outside_the_bridge_windows_is_reported() {
    let mut cfg = FakeConfigSpace::new();
    firmware_bridge(&mut cfg, bdf(0, 2, 0), 1, MEM, PREF);
    firmware_virtio(&mut cfg, bdf(1, 1, 0), 0x9000_0000, PREF.bus_base);
    assert_eq!(
        kept_problems(&mut cfg, bdf(1, 1, 0)),
        ["BAR1 at 0x90000000+0x1000 is outside the windows of bridge 00:02.0 above it (io closed, mem \
          0x80000000+0x100000, pref 0x210000000000+0x100000)"]
    );
}

#[test]
fn a_prefetchable_bar_may_sit_in_the_memory_window_but_not_the_reverse() {
    let mut cfg = FakeConfigSpace::new();
    let low_pref = Window { bus_base: MEM.bus_base + MIB, size: MIB };
    firmware_bridge(&mut cfg, bdf(0, 2, 0), 1, MEM, low_pref);
    firmware_virtio(&mut cfg, bdf(1, 1, 0), low_pref.bus_base, MEM.bus_base + 0x4000);
    assert_eq!(
        kept_problems(&mut cfg, bdf(1, 1, 0)),
        ["BAR1 at 0x80100000+0x1000 is outside the windows of bridge 00:02.0 above it (io closed, mem \
          0x80000000+0x100000, pref 0x80100000+0x100000)"],
        "BAR4 (prefetchable) in the memory window is fine, BAR1 (not prefetchable) in the prefetchable one is not"
    );
}

#[test]
fn bad_bus_numbers_are_reported() {
    let mut cfg = FakeConfigSpace::new();
    firmware_bridge(&mut cfg, bdf(0, 1, 0), 1, MEM, PREF);
    // Primary 3 (it sits on 0), secondary 1, subordinate 0.
    set_buses(&mut cfg, bdf(0, 1, 0), 0x00_01_03);
    // Behind it (bus 1) a bridge to bus 2..=4, outside its parent's 1..=0.
    let nested = Window { bus_base: MEM.bus_base, size: MIB };
    firmware_bridge(&mut cfg, bdf(1, 0, 0), 2, nested, PREF);
    set_buses(&mut cfg, bdf(1, 0, 0), 0x04_02_01);
    assert_eq!(
        kept_problems(&mut cfg, bdf(0, 1, 0)),
        [
            "its primary bus number is 03, but it sits on bus 00",
            "its subordinate bus 00 is below its secondary bus 01"
        ]
    );
    assert_eq!(
        kept_problems(&mut cfg, bdf(1, 0, 0)),
        ["its buses 02-04 are outside the buses 01-00 of bridge 00:01.0 above it"]
    );
}

#[test]
fn overlapping_sibling_bus_ranges_are_reported() {
    let mut cfg = FakeConfigSpace::new();
    // 00:01.0 to buses 1..=3, 00:02.0 to bus 3, their windows side by side.
    for (device, buses, shift) in [(1, 0x03_01_00, 0), (2, 0x03_03_00, MIB)] {
        let at = bdf(0, device, 0);
        let memory = Window { bus_base: MEM.bus_base + shift, size: MIB };
        let prefetchable = Window { bus_base: PREF.bus_base + shift, size: MIB };
        firmware_bridge(&mut cfg, at, 1, memory, prefetchable);
        set_buses(&mut cfg, at, buses);
    }
    let problems = kept_problems(&mut cfg, bdf(0, 2, 0));
    assert_eq!(problems, ["its buses 03-03 overlap the buses 01-03 of bridge 00:01.0 beside it"]);
}

#[test]
fn windows_outside_the_phb_or_the_bridge_above_are_reported() {
    let mut cfg = FakeConfigSpace::new();
    // A memory window at bus 0 (the state after reset with the registers at 0 is 0..1 MiB).
    firmware_bridge(&mut cfg, bdf(0, 1, 0), 1, Window { bus_base: 0, size: MIB }, PREF);
    assert_eq!(
        kept_problems(&mut cfg, bdf(0, 1, 0)),
        ["its memory window 0x0+0x100000 is outside the PHB's windows"]
    );

    let mut cfg = FakeConfigSpace::new();
    firmware_bridge(&mut cfg, bdf(0, 1, 0), 1, MEM, PREF);
    set_buses(&mut cfg, bdf(0, 1, 0), 0x02_01_00);
    let elsewhere = Window { bus_base: 0x9000_0000, size: MIB };
    firmware_bridge(&mut cfg, bdf(1, 0, 0), 2, elsewhere, PREF);
    assert_eq!(
        kept_problems(&mut cfg, bdf(1, 0, 0)),
        ["its memory window 0x90000000+0x100000 is outside the windows of bridge 00:01.0 above it (io closed, mem \
          0x80000000+0x100000, pref 0x210000000000+0x100000)"]
    );
}

#[test]
fn a_bar_firmware_left_unassigned_behind_a_bridge_is_reported_and_not_placed() {
    let mut cfg = FakeConfigSpace::new();
    firmware_bridge(&mut cfg, bdf(0, 2, 0), 1, MEM, PREF);
    add_virtio_like(&mut cfg, bdf(1, 1, 0));
    cfg.function_mut(bdf(1, 1, 0)).set_bar_address(4, PREF.bus_base);
    let (functions, assignments) = keep(&mut cfg);
    assert_eq!(
        problems_of(&functions, bdf(1, 1, 0)),
        ["BAR1: firmware left it unassigned behind bridge 00:02.0"]
    );
    assert!(!assignments.iter().any(|a| a.bdf == bdf(1, 1, 0) && a.bar_index == 1));
    assert_eq!(command_of(&cfg, bdf(1, 1, 0)), Command::BUS_MASTER, "no memory decode with BAR1 at 0");
}
