//! BAR assignment scenarios against [`FakeConfigSpace`] with QEMU pseries PHB 0 windows.

use super::assign::{assign_bars, Assignment, BarOrigin, BridgeLayout, Window, Windows};
use super::bar::BarKind;
use super::config::Width;
use super::decode::stop_dma;
use super::enumerate::enumerate;
use super::error::PciError;
use super::fake::FakeConfigSpace;
use super::function::Function;
use super::header::{bar_offset, Command, COMMAND};
use super::tests_enumerate::{add_virtio_like, bdf};

/// QEMU 7.2 PHB 0: 64 KiB I/O at bus 0, 2 GiB MEM32 at bus 2 GiB, 1 TiB MEM64 identity-mapped.
pub(super) fn qemu_windows() -> Windows {
    Windows {
        io: Some(Window { bus_base: 0, size: 0x1_0000 }),
        mem32: Some(Window { bus_base: 0x8000_0000, size: 0x8000_0000 }),
        mem64: Some(Window { bus_base: 0x2100_0000_0000, size: 0x100_0000_0000 }),
    }
}

pub(super) fn window_of(kind: BarKind, address: u64, windows: &Windows) -> Option<Window> {
    let candidates = match kind {
        BarKind::Io => [windows.io, None],
        BarKind::Mem32 | BarKind::Mem64 => [windows.mem32, windows.mem64],
    };
    candidates.into_iter().flatten().find(|w| address >= w.bus_base && address - w.bus_base < w.size)
}

/// Checks alignment, window containment, no overlap within a space, and register contents.
pub(super) fn check_layout(
    cfg: &FakeConfigSpace,
    functions: &[Function],
    assignments: &[Assignment],
    windows: &Windows,
) {
    let mut placed: Vec<(bool, u64, u64)> = Vec::new();
    for a in assignments {
        let function = functions.iter().find(|f| f.bdf == a.bdf).unwrap();
        let bar = function.bar(a.bar_index).unwrap();
        assert_eq!(bar.bus_addr, a.bus_addr);
        assert_ne!(a.bus_addr, 0);
        assert_eq!(a.bus_addr % a.size, 0, "{a:?} misaligned");
        let window = window_of(bar.kind, a.bus_addr, windows).expect("outside windows");
        assert!(a.bus_addr + a.size <= window.bus_base + window.size, "{a:?} overruns its window");
        for &(memory, start, end) in &placed {
            let overlaps = memory == bar.kind.is_memory() && a.bus_addr < end && start < a.bus_addr + a.size;
            assert!(!overlaps, "{a:?} overlaps {start:#x}..{end:#x}");
        }
        placed.push((bar.kind.is_memory(), a.bus_addr, a.bus_addr + a.size));
        let fake = cfg.function(a.bdf);
        let low = u64::from(fake.peek(bar_offset(a.bar_index), Width::Dword));
        let high = match bar.kind {
            BarKind::Mem64 => u64::from(fake.peek(bar_offset(a.bar_index) + 4, Width::Dword)),
            _ => 0,
        };
        assert_eq!(((high << 32) | low) & !0xf, a.bus_addr & !0xf);
    }
}

pub(super) fn command_of(cfg: &FakeConfigSpace, at: super::bdf::Bdf) -> Command {
    Command::from_bits_retain(cfg.function(at).peek(COMMAND, Width::Word) as u16)
}

#[test]
fn assigns_aligned_non_overlapping_bars_and_enables_memory_and_bus_master() {
    let mut cfg = FakeConfigSpace::new();
    add_virtio_like(&mut cfg, bdf(0, 1, 0));
    add_virtio_like(&mut cfg, bdf(0, 2, 0));
    let function = cfg.add_function(bdf(0, 3, 0), 0x1234, 0x0001, 0x01_00_00);
    function.set_bar(0, BarKind::Io, 0x100).set_bar(2, BarKind::Mem32, 0x10_0000);
    cfg.function_mut(bdf(0, 3, 0)).set_command(Command::INTERRUPT_DISABLE);
    let windows = qemu_windows();
    let mut functions = enumerate(&mut cfg, 0).unwrap();
    let assignments = assign_bars(&mut cfg, &mut functions, &windows, BridgeLayout::Kernel).unwrap();
    assert_eq!(assignments.len(), 6);
    assert!(assignments.iter().all(|a| a.origin == BarOrigin::Kernel));
    check_layout(&cfg, &functions, &assignments, &windows);
    assert_eq!(assignments[0].size, 0x10_0000, "largest first");
    let mem64 = assignments.iter().find(|a| a.bdf == bdf(0, 1, 0) && a.bar_index == 4).unwrap();
    assert!(mem64.bus_addr >= 0x2100_0000_0000, "Mem64 goes to the 64-bit window");
    let io = assignments.iter().find(|a| a.bar_index == 0).unwrap();
    assert!(io.bus_addr != 0 && io.bus_addr < 0x1_0000);
    let virtio = Command::MEMORY_SPACE | Command::BUS_MASTER;
    assert_eq!(command_of(&cfg, bdf(0, 1, 0)), virtio);
    assert_eq!(functions[0].command, virtio.bits());
    let mixed = Command::IO_SPACE | Command::MEMORY_SPACE | Command::BUS_MASTER | Command::INTERRUPT_DISABLE;
    assert_eq!(command_of(&cfg, bdf(0, 3, 0)), mixed);
}

#[test]
fn firmware_bars_are_kept_and_avoided() {
    let mut cfg = FakeConfigSpace::new();
    add_virtio_like(&mut cfg, bdf(0, 1, 0));
    add_virtio_like(&mut cfg, bdf(0, 2, 0));
    cfg.function_mut(bdf(0, 1, 0)).set_bar_address(1, 0x8000_0000).set_bar_address(4, 0x2100_0000_0000);
    let windows = qemu_windows();
    let mut functions = enumerate(&mut cfg, 0).unwrap();
    let assignments = assign_bars(&mut cfg, &mut functions, &windows, BridgeLayout::Kernel).unwrap();
    let firmware: Vec<_> = assignments.iter().filter(|a| a.origin == BarOrigin::Firmware).collect();
    assert_eq!(firmware.len(), 2);
    assert_eq!((firmware[0].bus_addr, firmware[1].bus_addr), (0x8000_0000, 0x2100_0000_0000));
    check_layout(&cfg, &functions, &assignments, &windows);
    let new_bar1 = functions[1].bar(1).unwrap().bus_addr;
    assert_eq!(new_bar1, 0x8000_1000, "placed right after the firmware BAR");
    assert_eq!(command_of(&cfg, bdf(0, 1, 0)), Command::MEMORY_SPACE | Command::BUS_MASTER);
}

#[test]
fn mem64_falls_back_to_mem32_below_4gib() {
    let mut cfg = FakeConfigSpace::new();
    add_virtio_like(&mut cfg, bdf(0, 1, 0));
    let windows = Windows { mem64: None, ..qemu_windows() };
    let mut functions = enumerate(&mut cfg, 0).unwrap();
    let assignments = assign_bars(&mut cfg, &mut functions, &windows, BridgeLayout::Kernel).unwrap();
    check_layout(&cfg, &functions, &assignments, &windows);
    let bar4 = functions[0].bar(4).unwrap();
    assert!(bar4.bus_addr >= 0x8000_0000 && bar4.bus_addr + bar4.size <= 1 << 32);
    assert_eq!(cfg.function(bdf(0, 1, 0)).peek(bar_offset(4) + 4, Width::Dword), 0);
}

#[test]
fn bar_that_does_not_fit_is_a_problem_and_its_decode_stays_off() {
    let mut cfg = FakeConfigSpace::new();
    let function = cfg.add_function(bdf(0, 1, 0), 0x1234, 0x0001, 0);
    function.set_bar(0, BarKind::Io, 0x100).set_bar(1, BarKind::Mem32, 0x1000_0000);
    function.set_command(Command::MEMORY_SPACE);
    let windows =
        Windows { mem32: Some(Window { bus_base: 0x8000_0000, size: 0x100_0000 }), ..qemu_windows() };
    let mut functions = enumerate(&mut cfg, 0).unwrap();
    let assignments = assign_bars(&mut cfg, &mut functions, &windows, BridgeLayout::Kernel).unwrap();
    assert_eq!(assignments.len(), 1);
    assert_eq!(functions[0].problems, ["BAR1: 0x10000000 bytes of Mem32 do not fit"]);
    assert_eq!(functions[0].bar(1).unwrap().bus_addr, 0);
    assert_eq!(command_of(&cfg, bdf(0, 1, 0)), Command::IO_SPACE | Command::BUS_MASTER);
}

#[test]
fn invalid_windows_are_rejected() {
    let mut cfg = FakeConfigSpace::new();
    let mut functions = enumerate(&mut cfg, 0).unwrap();
    let high_mem32 =
        Windows { mem32: Some(Window { bus_base: 0xc000_0000, size: 0x8000_0000 }), ..qemu_windows() };
    let result = assign_bars(&mut cfg, &mut functions, &high_mem32, BridgeLayout::Kernel);
    assert_eq!(result, Err(PciError::BadWindow { kind: BarKind::Mem32 }));
    let empty_io = Windows { io: Some(Window { bus_base: 0, size: 0 }), ..qemu_windows() };
    let result = assign_bars(&mut cfg, &mut functions, &empty_io, BridgeLayout::Kernel);
    assert_eq!(result, Err(PciError::BadWindow { kind: BarKind::Io }));
}

#[test]
fn stopping_dma_clears_bus_master_only() {
    let mut cfg = FakeConfigSpace::new();
    let b = bdf(0, 1, 0);
    cfg.add_function(b, 0x1af4, 0x1042, 0x01_0000).set_command(Command::MEMORY_SPACE | Command::BUS_MASTER);
    let mut function = Function::new(b, 0x1af4, 0x1042);
    stop_dma(&mut cfg, &mut function).unwrap();
    assert_eq!(command_of(&cfg, b), Command::MEMORY_SPACE);
    assert_eq!(function.command, Command::MEMORY_SPACE.bits());
}
