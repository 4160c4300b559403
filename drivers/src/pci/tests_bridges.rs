//! The kernel's layout behind PCI-to-PCI bridges against [`FakeConfigSpace`], whose bridges
//! route configuration cycles by the bus numbers programmed: bus numbering, window sizing and
//! alignment (1 MiB memory, 4 KiB I/O, 64-bit prefetchable), nested bridges, what does not fit,
//! and what QEMU's bridges look like. After each layout the fake is enumerated again as
//! firmware's layout and checked, so what the model says is what the registers hold.

use super::assign::{assign_bars, Assignment, BridgeLayout, Window, Windows};
use super::bar::BarKind;
use super::bdf::Bdf;
use super::bridge::{read_bridge, BusNumbers, Decode, WindowKind};
use super::bridge_check::check_firmware_layout;
use super::config::Width;
use super::enumerate::enumerate;
use super::fake::{FakeConfigSpace, SlotId};
use super::function::Function;
use super::header::{bar_offset, Command};
use super::numbering::{enumerate_numbering, MAX_BRIDGE_DEPTH};
use super::tests_assign::{check_layout, command_of, qemu_windows};
use super::tests_enumerate::{bdf, make_virtio_like};

const BRIDGE_IDS: (u16, u16, u32) = (0x1b36, 0x0001, 0x06_04_00);
const VIRTIO_IDS: (u16, u16, u32) = (0x1af4, 0x1042, 0x01_00_00);
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A QEMU `pci-bridge` at reset (bus numbers 0) with its 256-byte 64-bit SHPC BAR.
fn bridge(cfg: &mut FakeConfigSpace, parent: Option<SlotId>, device: u8) -> SlotId {
    let id = cfg.attach(parent, device, 0, BRIDGE_IDS);
    cfg.slot(id).make_bridge(0, 0).set_bar(0, BarKind::Mem64, 0x100);
    id
}

/// A fake PHB with one QEMU bridge at 00:02.0.
fn one_bridge() -> (FakeConfigSpace, SlotId) {
    let mut cfg = FakeConfigSpace::new();
    let br = bridge(&mut cfg, None, 2);
    (cfg, br)
}

/// A virtio-blk-like function (BAR1 Mem32 4 KiB, BAR4 Mem64 prefetchable 16 KiB).
fn virtio(cfg: &mut FakeConfigSpace, parent: Option<SlotId>, device: u8) -> SlotId {
    let id = cfg.attach(parent, device, 0, VIRTIO_IDS);
    make_virtio_like(cfg.slot(id));
    id
}

/// Numbers, enumerates and assigns in the kernel's layout.
fn lay_out(cfg: &mut FakeConfigSpace, windows: &Windows) -> (Vec<Function>, Vec<Assignment>) {
    let mut functions = enumerate_numbering(cfg, 0).unwrap();
    let assignments = assign_bars(cfg, &mut functions, windows, BridgeLayout::Kernel).unwrap();
    (functions, assignments)
}

/// [`lay_out`] with QEMU's PHB windows, asserting no function has a problem.
fn clean_layout(cfg: &mut FakeConfigSpace) -> (Vec<Function>, Vec<Assignment>, Windows) {
    let windows = qemu_windows();
    let (functions, assignments) = lay_out(cfg, &windows);
    no_problems(&functions);
    (functions, assignments, windows)
}

fn find(functions: &[Function], at: Bdf) -> &Function {
    functions.iter().find(|f| f.bdf == at).unwrap_or_else(|| panic!("no function {at}"))
}

fn window(function: &Function, kind: WindowKind) -> Option<Window> {
    function.bridge.unwrap().window(kind)
}

/// Every function has no problem.
fn no_problems(functions: &[Function]) {
    for f in functions {
        assert!(f.problems.is_empty(), "{}: {:?}", f.bdf, f.problems);
    }
}

/// Independent of the kernel's checker: every bridge window is granule-aligned, a multiple of
/// the granule and inside the window above (or a PHB window); every BAR behind a bridge is
/// inside the window of its kind; no two windows or BARs of one space overlap on a bus.
fn check_nesting(functions: &[Function], windows: &Windows) {
    let inside = |w: Window, outer: Window| {
        w.bus_base >= outer.bus_base && w.bus_base + w.size <= outer.bus_base + outer.size
    };
    for f in functions {
        let parent = f.upstream.map(|up| find(functions, up));
        if let Some(bridge) = f.bridge {
            for kind in WindowKind::ALL {
                let Some(w) = bridge.window(kind) else { continue };
                assert_eq!(w.bus_base % kind.granule(), 0, "{} {kind} window {w:x?} misaligned", f.bdf);
                assert_eq!(w.size % kind.granule(), 0, "{} {kind} window {w:x?} not whole granules", f.bdf);
                let holders: Vec<Window> = match (parent, kind) {
                    (Some(p), WindowKind::Prefetchable) => {
                        [window(p, WindowKind::Prefetchable), window(p, WindowKind::Memory)]
                            .into_iter()
                            .flatten()
                            .collect()
                    }
                    (Some(p), _) => window(p, kind).into_iter().collect(),
                    (None, WindowKind::Io) => windows.io.into_iter().collect(),
                    (None, _) => [windows.mem32, windows.mem64].into_iter().flatten().collect(),
                };
                assert!(
                    holders.iter().any(|&h| inside(w, h)),
                    "{} {kind} window {w:x?} not inside {holders:x?}",
                    f.bdf
                );
            }
        }
        let Some(p) = parent else { continue };
        for bar in &f.bars {
            let w = Window { bus_base: bar.bus_addr, size: bar.size };
            let kinds: &[WindowKind] = match (bar.kind, bar.prefetchable) {
                (BarKind::Io, _) => &[WindowKind::Io],
                (_, false) => &[WindowKind::Memory],
                (_, true) => &[WindowKind::Prefetchable, WindowKind::Memory],
            };
            let held = kinds.iter().filter_map(|&k| window(p, k)).any(|h| inside(w, h));
            assert!(held, "{} BAR{} {w:x?} not inside bridge {}'s windows", f.bdf, bar.index, p.bdf);
        }
    }
    // Siblings: windows and BARs of the functions on one bus do not overlap (per space).
    let mut on_bus: Vec<(Option<Bdf>, bool, Window)> = Vec::new();
    for f in functions {
        let mut ranges: Vec<(bool, Window)> = f
            .bars
            .iter()
            .map(|b| (b.kind.is_memory(), Window { bus_base: b.bus_addr, size: b.size }))
            .collect();
        if let Some(bridge) = f.bridge {
            ranges.extend(
                WindowKind::ALL.iter().filter_map(|&k| bridge.window(k).map(|w| (k != WindowKind::Io, w))),
            );
        }
        for (memory, w) in ranges {
            for &(up, other_memory, other) in &on_bus {
                let overlap =
                    w.bus_base < other.bus_base + other.size && other.bus_base < w.bus_base + w.size;
                assert!(
                    !(up == f.upstream && memory == other_memory && overlap),
                    "{} {w:x?} overlaps {other:x?}",
                    f.bdf
                );
            }
            on_bus.push((f.upstream, memory, w));
        }
    }
}

/// Every layout check: the BARs against the PHB windows and the registers
/// ([`check_layout`]), the nesting, and the registers read again as firmware's layout.
fn check_all(
    cfg: &mut FakeConfigSpace,
    functions: &[Function],
    assignments: &[Assignment],
    windows: &Windows,
) {
    check_layout(cfg, functions, assignments, windows);
    check_nesting(functions, windows);
    reread_as_firmware(cfg, functions, windows);
}

/// Enumerates the fake again as firmware's layout (following the programmed bus numbers) and
/// checks it: the registers hold what the model says.
fn reread_as_firmware(cfg: &mut FakeConfigSpace, functions: &[Function], windows: &Windows) {
    let mut again = enumerate(cfg, 0).unwrap();
    check_firmware_layout(&mut again, windows);
    no_problems(&again);
    assert_eq!(again.len(), functions.len());
    for f in functions {
        let g = find(&again, f.bdf);
        assert_eq!((g.vendor_id, g.upstream), (f.vendor_id, f.upstream), "{}", f.bdf);
        assert_eq!(g.bars, f.bars, "{} BARs", f.bdf);
        assert_eq!(g.bridge, f.bridge, "{} bridge registers", f.bdf);
    }
}

#[test]
fn a_device_behind_a_qemu_bridge_gets_bus_windows_and_bars() {
    let mut cfg = FakeConfigSpace::new();
    virtio(&mut cfg, None, 1);
    let br = bridge(&mut cfg, None, 2);
    let disk = virtio(&mut cfg, Some(br), 1);
    let (functions, assignments, windows) = clean_layout(&mut cfg);
    let names: Vec<String> = functions.iter().map(|f| f.bdf.to_string()).collect();
    assert_eq!(names, ["00:01.0", "00:02.0", "01:01.0"]);
    let bridge_fn = find(&functions, bdf(0, 2, 0));
    let registers = bridge_fn.bridge.unwrap();
    assert_eq!(registers.buses, BusNumbers { primary: 0, secondary: 1, subordinate: 1 });
    assert_eq!(
        (registers.io_decode, registers.prefetchable_decode),
        (Some(Decode::Bits16), Some(Decode::Bits64))
    );
    // One MiB each: the 4 KiB BAR1 in the memory window (MEM32), the 16 KiB 64-bit
    // prefetchable BAR4 in the prefetchable window (MEM64); no I/O window.
    let memory = window(bridge_fn, WindowKind::Memory).unwrap();
    let prefetchable = window(bridge_fn, WindowKind::Prefetchable).unwrap();
    assert_eq!((memory.size, prefetchable.size), (MIB, MIB));
    assert!(memory.bus_base >= 0x8000_0000 && memory.bus_base + memory.size <= 1 << 32);
    assert!(prefetchable.bus_base >= 0x2100_0000_0000);
    assert_eq!(window(bridge_fn, WindowKind::Io), None);
    let behind = find(&functions, bdf(1, 1, 0));
    assert_eq!(behind.upstream, Some(bdf(0, 2, 0)));
    assert_eq!(behind.bar(1).unwrap().bus_addr, memory.bus_base);
    assert_eq!(behind.bar(4).unwrap().bus_addr, prefetchable.bus_base);
    assert_eq!(assignments.len(), 2 + 1 + 2, "every BAR of the three functions");
    check_layout(&cfg, &functions, &assignments, &windows);
    check_nesting(&functions, &windows);
    // Decode: the bridge forwards memory and masters DMA; the device decodes memory.
    let wanted = Command::MEMORY_SPACE | Command::BUS_MASTER;
    assert_eq!(command_of(&cfg, bdf(0, 2, 0)), wanted);
    assert_eq!(command_of(&cfg, bdf(1, 1, 0)), wanted);
    assert_eq!(cfg.decode_violations, 0);
    // The registers, read back through the routed configuration space.
    assert_eq!(read_bridge(&mut cfg, bdf(0, 2, 0)).unwrap(), registers);
    let low = cfg.slot_ref(disk).peek(bar_offset(4), Width::Dword);
    assert_eq!(u64::from(low & !0xf), prefetchable.bus_base & 0xffff_fff0);
    reread_as_firmware(&mut cfg, &functions, &windows);
}

#[test]
fn nested_bridges_are_numbered_depth_first_and_windows_nest() {
    // 00:01.0 bridge A → { 00.0 bridge B → { 00.0 virtio, 01.0 I/O device }, 03.0 virtio }
    // 00:02.0 bridge C → { 00.0 virtio }
    let mut cfg = FakeConfigSpace::new();
    let a = bridge(&mut cfg, None, 1);
    let c = bridge(&mut cfg, None, 2);
    let b = bridge(&mut cfg, Some(a), 0);
    virtio(&mut cfg, Some(b), 0);
    let io = cfg.attach(Some(b), 1, 0, (0x1234, 0x0002, 0x01_00_00));
    cfg.slot(io).set_bar(0, BarKind::Io, 0x100).set_bar(1, BarKind::Mem32, 0x20_0000);
    virtio(&mut cfg, Some(a), 3);
    virtio(&mut cfg, Some(c), 0);
    let (functions, assignments, windows) = clean_layout(&mut cfg);
    let buses = |at| find(&functions, at).bridge.unwrap().buses;
    assert_eq!(buses(bdf(0, 1, 0)), BusNumbers { primary: 0, secondary: 1, subordinate: 2 });
    assert_eq!(buses(bdf(1, 0, 0)), BusNumbers { primary: 1, secondary: 2, subordinate: 2 });
    assert_eq!(buses(bdf(0, 2, 0)), BusNumbers { primary: 0, secondary: 3, subordinate: 3 });
    let upstreams: Vec<(String, Option<String>)> =
        functions.iter().map(|f| (f.bdf.to_string(), f.upstream.map(|u| u.to_string()))).collect();
    let expect = |b: &str, u: Option<&str>| (b.to_string(), u.map(String::from));
    assert_eq!(
        upstreams,
        [
            expect("00:01.0", None),
            expect("00:02.0", None),
            expect("01:00.0", Some("00:01.0")),
            expect("01:03.0", Some("00:01.0")),
            expect("02:00.0", Some("01:00.0")),
            expect("02:01.0", Some("01:00.0")),
            expect("03:00.0", Some("00:02.0")),
        ]
    );
    // B's memory window holds a 2 MiB and two 4 KiB BARs: 3 MiB (aligned 2 MiB); A's holds it
    // plus 03.0's 4 KiB BAR and B's own SHPC BAR.
    let b_fn = find(&functions, bdf(1, 0, 0));
    let b_memory = window(b_fn, WindowKind::Memory).unwrap();
    assert_eq!(b_memory.size, 3 * MIB);
    assert_eq!(b_memory.bus_base % (2 * MIB), 0, "aligned to its largest BAR");
    let b_io = window(b_fn, WindowKind::Io).unwrap();
    assert_eq!(b_io.size, 0x1000, "4 KiB I/O granule");
    let a_io = window(find(&functions, bdf(0, 1, 0)), WindowKind::Io).unwrap();
    assert_eq!((a_io.bus_base % 0x1000, a_io.size), (0, 0x1000));
    assert_ne!(a_io.bus_base, 0, "I/O 0 is never handed out");
    assert_eq!(window(find(&functions, bdf(0, 2, 0)), WindowKind::Io), None);
    let io_bar = find(&functions, bdf(2, 1, 0)).bar(0).unwrap();
    assert!(io_bar.bus_addr >= b_io.bus_base && io_bar.bus_addr < b_io.bus_base + b_io.size);
    for at in [bdf(0, 1, 0), bdf(1, 0, 0)] {
        let prefetchable = window(find(&functions, at), WindowKind::Prefetchable).unwrap();
        assert!(prefetchable.bus_base >= 0x2100_0000_0000, "{at}: 64-bit prefetchable above 4 GiB");
    }
    assert_eq!(
        command_of(&cfg, bdf(0, 1, 0)),
        Command::IO_SPACE | Command::MEMORY_SPACE | Command::BUS_MASTER
    );
    assert_eq!(
        command_of(&cfg, bdf(2, 1, 0)),
        Command::IO_SPACE | Command::MEMORY_SPACE | Command::BUS_MASTER
    );
    check_all(&mut cfg, &functions, &assignments, &windows);
}

#[test]
fn stale_overlapping_bus_numbers_are_cleared_and_redone() {
    let mut cfg = FakeConfigSpace::new();
    let a = bridge(&mut cfg, None, 1);
    let b = bridge(&mut cfg, None, 2);
    virtio(&mut cfg, Some(a), 0);
    virtio(&mut cfg, Some(b), 0);
    // Both claim buses 1..=5 (a previous kernel, or firmware, left this).
    for id in [a, b] {
        cfg.slot(id).poke(super::header::PRIMARY_BUS, 0x05_01_00, Width::Dword);
    }
    let (functions, assignments, windows) = clean_layout(&mut cfg);
    let found: Vec<String> = functions.iter().map(|f| f.bdf.to_string()).collect();
    assert_eq!(found, ["00:01.0", "00:02.0", "01:00.0", "02:00.0"]);
    check_all(&mut cfg, &functions, &assignments, &windows);
}

#[test]
fn bars_behind_bridges_are_reassigned_in_the_kernels_layout() {
    let (mut cfg, br) = one_bridge();
    let disk = virtio(&mut cfg, Some(br), 1);
    // A stale address outside any window the kernel will open.
    cfg.slot(disk).set_bar_address(1, 0x1234_5000);
    let (functions, assignments, windows) = clean_layout(&mut cfg);
    let bar1 = find(&functions, bdf(1, 1, 0)).bar(1).unwrap();
    assert_ne!(bar1.bus_addr, 0x1234_5000);
    let origin = assignments.iter().find(|a| a.bdf == bdf(1, 1, 0) && a.bar_index == 1).unwrap().origin;
    assert_eq!(origin, super::assign::BarOrigin::Kernel);
    check_all(&mut cfg, &functions, &assignments, &windows);
}

#[test]
fn a_bridge_without_a_prefetchable_window_holds_prefetchable_bars_in_its_memory_window() {
    let (mut cfg, br) = one_bridge();
    cfg.slot(br).set_bridge_windows(None, None);
    virtio(&mut cfg, Some(br), 1);
    let (functions, assignments, windows) = clean_layout(&mut cfg);
    let registers = find(&functions, bdf(0, 2, 0)).bridge.unwrap();
    assert_eq!((registers.io_decode, registers.prefetchable_decode), (None, None));
    let memory = registers.window(WindowKind::Memory).unwrap();
    assert_eq!(memory.size, MIB, "4 KiB + 16 KiB in one MiB");
    let bar4 = find(&functions, bdf(1, 1, 0)).bar(4).unwrap();
    assert!(bar4.bus_addr >= memory.bus_base && bar4.bus_addr + bar4.size <= memory.bus_base + memory.size);
    assert!(bar4.bus_addr < 1 << 32, "a 64-bit BAR with a 32-bit address");
    check_all(&mut cfg, &functions, &assignments, &windows);
}

#[test]
fn a_32_bit_prefetchable_window_stays_below_4_gib_and_holds_32_bit_prefetchable_bars() {
    let mut cfg = FakeConfigSpace::new();
    let outer = bridge(&mut cfg, None, 1);
    let inner = bridge(&mut cfg, Some(outer), 0);
    cfg.slot(inner).set_bridge_windows(Some(Decode::Bits32), Some(Decode::Bits32));
    virtio(&mut cfg, Some(inner), 0);
    let frame = cfg.attach(Some(inner), 1, 0, (0x1234, 0x1111, 0x03_00_00));
    cfg.slot(frame).set_bar(0, BarKind::Mem32, 0x40_0000).set_prefetchable(0);
    let (functions, assignments, windows) = clean_layout(&mut cfg);
    let inner_fn = find(&functions, bdf(1, 0, 0));
    let inner_prefetchable = window(inner_fn, WindowKind::Prefetchable).unwrap();
    assert!(inner_prefetchable.bus_base + inner_prefetchable.size <= 1 << 32);
    let frame_bar = find(&functions, bdf(2, 1, 0)).bar(0).unwrap();
    assert!(
        frame_bar.bus_addr >= inner_prefetchable.bus_base,
        "the 32-bit prefetchable BAR is in the window"
    );
    // The outer (64-bit) bridge may not put the inner 32-bit window above 4 GiB: it holds it
    // in its memory window.
    let outer_memory = window(find(&functions, bdf(0, 1, 0)), WindowKind::Memory).unwrap();
    assert!(inner_prefetchable.bus_base >= outer_memory.bus_base);
    check_all(&mut cfg, &functions, &assignments, &windows);
}

#[test]
fn a_device_too_big_for_the_phb_window_is_a_clear_problem() {
    let (mut cfg, br) = one_bridge();
    let big = cfg.attach(Some(br), 0, 0, (0x1234, 0x2222, 0x03_00_00));
    cfg.slot(big).set_bar(0, BarKind::Mem32, GIB).set_bar(1, BarKind::Mem64, 4 * GIB);
    virtio(&mut cfg, Some(br), 1);
    // MEM32 of 1 GiB: the memory window needs 4 GiB + 1 GiB + 4 KiB.
    let windows = Windows { mem32: Some(Window { bus_base: 0x8000_0000, size: GIB }), ..qemu_windows() };
    let (functions, _) = lay_out(&mut cfg, &windows);
    let bridge_fn = find(&functions, bdf(0, 2, 0));
    assert_eq!(
        bridge_fn.problems,
        ["its memory window would need 0x140100000 bytes, more than its 32-bit decoder reaches: closed, what is \
          behind it is not assigned"]
    );
    assert_eq!(window(bridge_fn, WindowKind::Memory), None);
    let big_fn = find(&functions, bdf(1, 0, 0));
    assert_eq!(
        big_fn.problems,
        [
            "BAR0: not assigned, the memory window of bridge 00:02.0 could not be sized",
            "BAR1: not assigned, the memory window of bridge 00:02.0 could not be sized",
        ]
    );
    assert!(big_fn.bars.iter().all(|b| b.bus_addr == 0));
    assert_eq!(command_of(&cfg, bdf(1, 0, 0)), Command::BUS_MASTER, "no decode with unassigned BARs");
    // The virtio's prefetchable BAR still got its window; its BAR1 shared the failed one.
    let disk = find(&functions, bdf(1, 1, 0));
    assert!(disk.bar(4).unwrap().is_assigned());
    assert_eq!(disk.problems, ["BAR1: not assigned, the memory window of bridge 00:02.0 could not be sized"]);
}

#[test]
fn a_window_that_fits_its_decoder_but_not_the_phb_is_closed_with_its_bars_named() {
    let (mut cfg, br) = one_bridge();
    let big = cfg.attach(Some(br), 0, 0, (0x1234, 0x2222, 0x03_00_00));
    cfg.slot(big).set_bar(0, BarKind::Mem32, GIB);
    let windows =
        Windows { mem32: Some(Window { bus_base: 0x8000_0000, size: 512 * MIB }), ..qemu_windows() };
    let (functions, _) = lay_out(&mut cfg, &windows);
    assert_eq!(
        find(&functions, bdf(0, 2, 0)).problems,
        ["its memory window (0x40000000 bytes for what is behind it) does not fit in the PHB's windows: closed, \
          what is behind it is not assigned"]
    );
    assert_eq!(
        find(&functions, bdf(1, 0, 0)).problems,
        ["BAR0: not assigned, the memory window of bridge 00:02.0 above it could not be opened"]
    );
    let registers = read_bridge(&mut cfg, bdf(0, 2, 0)).unwrap();
    assert_eq!(registers.window(WindowKind::Memory), None, "closed in the registers too");
}

#[test]
fn prefetchable_bars_that_overflow_2_to_the_64_are_a_problem_not_a_panic() {
    let (mut cfg, br) = one_bridge();
    for device in 0..2 {
        let huge = cfg.attach(Some(br), device, 0, (0x1234, 0x3333, 0x03_00_00));
        cfg.slot(huge).set_bar(0, BarKind::Mem64, 1 << 63).set_prefetchable(0);
    }
    let (functions, _) = lay_out(&mut cfg, &qemu_windows());
    let problems = &find(&functions, bdf(0, 2, 0)).problems;
    assert_eq!(
        problems,
        &["its prefetchable window would need more than 2^64 bytes: closed, what is behind it is not assigned"]
    );
    for device in 0..2 {
        assert_eq!(find(&functions, bdf(1, device, 0)).problems.len(), 1);
    }
}

#[test]
fn an_io_bar_behind_a_bridge_without_io_is_reported() {
    let (mut cfg, br) = one_bridge();
    cfg.slot(br).set_bridge_windows(None, Some(Decode::Bits64));
    let legacy = cfg.attach(Some(br), 0, 0, (0x1af4, 0x1001, 0x01_00_00));
    cfg.slot(legacy).set_bar(0, BarKind::Io, 0x40).set_bar(1, BarKind::Mem32, 0x1000);
    let (functions, _) = lay_out(&mut cfg, &qemu_windows());
    assert_eq!(
        find(&functions, bdf(1, 0, 0)).problems,
        ["BAR0 is I/O, but bridge 00:02.0 above it forwards no I/O: not assigned"]
    );
    assert_eq!(command_of(&cfg, bdf(1, 0, 0)), Command::MEMORY_SPACE | Command::BUS_MASTER);
}

#[test]
fn a_bridge_whose_own_bar_does_not_fit_does_not_forward() {
    let mut cfg = FakeConfigSpace::new();
    let br = cfg.attach(None, 2, 0, BRIDGE_IDS);
    cfg.slot(br).make_bridge(0, 0).set_bar(0, BarKind::Mem64, 4 * GIB);
    virtio(&mut cfg, Some(br), 1);
    let windows = Windows { mem64: None, ..qemu_windows() };
    let (functions, _) = lay_out(&mut cfg, &windows);
    let problems = &find(&functions, bdf(0, 2, 0)).problems;
    assert!(problems.contains(&"BAR0: 0x100000000 bytes of Mem64 do not fit".to_string()), "{problems:?}");
    assert!(
        problems.contains(
            &"its own BAR0 is unassigned: memory decode left off, so its memory windows forward nothing"
                .into()
        ),
        "{problems:?}"
    );
    assert_eq!(command_of(&cfg, bdf(0, 2, 0)), Command::BUS_MASTER);
}

#[test]
fn bridges_nested_too_deep_stop_the_scan_with_a_problem() {
    let mut cfg = FakeConfigSpace::new();
    let mut parent = None;
    for _ in 0..=MAX_BRIDGE_DEPTH + 1 {
        parent = Some(bridge(&mut cfg, parent, 0));
    }
    let functions = enumerate_numbering(&mut cfg, 0).unwrap();
    assert_eq!(functions.len(), MAX_BRIDGE_DEPTH + 1);
    let last = functions.last().unwrap();
    assert_eq!(
        last.problems,
        [format!("bridges nested more than {MAX_BRIDGE_DEPTH} deep: the buses behind it are not scanned")]
    );
}

#[test]
fn running_out_of_bus_numbers_is_a_problem() {
    let mut cfg = FakeConfigSpace::new();
    for device in 0..32 {
        for function in 0..8 {
            let id = cfg.attach(None, device, function, BRIDGE_IDS);
            cfg.slot(id).make_bridge(0, 0).set_header_type(0x81);
        }
    }
    let functions = enumerate_numbering(&mut cfg, 0).unwrap();
    assert_eq!(functions.len(), 256);
    assert_eq!(functions[254].secondary_bus(), Some(255));
    assert_eq!(functions[255].problems, ["no bus number left: the buses behind it are not scanned"]);
}

#[test]
fn a_device_behind_an_unnumbered_bridge_is_unreachable_in_the_fake() {
    let (mut cfg, br) = one_bridge();
    virtio(&mut cfg, Some(br), 1);
    let found = enumerate(&mut cfg, 0).unwrap();
    assert_eq!(found.len(), 1, "bus numbers 0: nothing behind it answers");
    assert_eq!(found[0].problems, ["secondary bus number not assigned"]);
}
