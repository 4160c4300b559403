//! Enumeration scenarios against [`FakeConfigSpace`]: absent slots, virtio-like devices,
//! multi-function devices, bridges, hostile capability lists and BAR sizing side effects.

use super::bar::BarKind;
use super::bdf::Bdf;
use super::caps::{CapabilityKind, ExtCapabilityKind};
use super::config::Width;
use super::enumerate::enumerate;
use super::error::PciError;
use super::fake::{AbsentResponse, FakeConfigSpace, FakeFunction};
use super::header::{bar_offset, Command, CAPABILITIES_POINTER, COMMAND, HEADER_TYPE};
use super::{ConfigError, MsixInfo, SriovInfo};

pub(super) fn bdf(bus: u8, device: u8, function: u8) -> Bdf {
    Bdf::new(bus, device, function).unwrap()
}

/// A virtio-pci-like function: BAR1 Mem32 4 KiB (MSI-X), BAR4 Mem64 prefetchable 16 KiB,
/// vendor, MSI-X (2 entries) and PCI Express capabilities.
pub(super) fn add_virtio_like(cfg: &mut FakeConfigSpace, at: Bdf) {
    make_virtio_like(cfg.add_function(at, 0x1af4, 0x1041, 0x02_00_00));
}

/// Gives `function` the BARs and capabilities of [`add_virtio_like`].
pub(super) fn make_virtio_like(function: &mut FakeFunction) {
    function.set_bar(1, BarKind::Mem32, 0x1000);
    function.set_bar(4, BarKind::Mem64, 0x4000).set_prefetchable(4);
    function.add_capability(0x09, &[0x10, 0x01, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    // MSI-X: control = table size − 1 = 1; table in BAR1 at 0; PBA in BAR1 at 0x800.
    function.add_capability(0x11, &[0x01, 0x00, 0x01, 0, 0, 0, 0x01, 0x08, 0, 0]);
    function.add_capability(0x10, &[0x02, 0x00]);
    function.enable_extended_space();
}

#[test]
fn empty_bus_yields_no_functions_for_every_absent_style() {
    for absent in [AbsentResponse::RtasHardwareError, AbsentResponse::NoDevice, AbsentResponse::AllOnes] {
        let mut cfg = FakeConfigSpace::new();
        cfg.absent = absent;
        assert_eq!(enumerate(&mut cfg, 0), Ok(vec![]), "{absent:?}");
    }
}

#[test]
fn virtio_like_device_is_decoded() {
    let mut cfg = FakeConfigSpace::new();
    add_virtio_like(&mut cfg, bdf(0, 1, 0));
    let functions = enumerate(&mut cfg, 0).unwrap();
    assert_eq!(functions.len(), 1);
    let f = &functions[0];
    assert_eq!(f.bdf.to_string(), "00:01.0");
    assert_eq!((f.vendor_id, f.device_id, f.class_code), (0x1af4, 0x1041, 0x020000));
    assert_eq!((f.revision, f.header_type, f.multifunction), (1, 0, false));
    assert_eq!(f.bars.len(), 2);
    let bar4 = f.bar(4).unwrap();
    assert_eq!((bar4.kind, bar4.prefetchable, bar4.size, bar4.bus_addr), (BarKind::Mem64, true, 0x4000, 0));
    let bar1 = f.bar(1).unwrap();
    assert_eq!((bar1.kind, bar1.prefetchable, bar1.size), (BarKind::Mem32, false, 0x1000));
    let kinds: Vec<_> = f.capabilities.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [CapabilityKind::Vendor, CapabilityKind::MsiX, CapabilityKind::PciExpress]);
    assert_eq!(f.capability_names(), "vendor,pcie,msix");
    let msix = MsixInfo { table_size: 2, table_bar: 1, table_offset: 0, pba_bar: 1, pba_offset: 0x800 };
    assert_eq!(f.msix, Some(msix));
    assert!(f.extended_capabilities.is_empty());
    assert_eq!(f.problems, Vec::<String>::new());
    assert!(!f.is_bridge());
}

#[test]
fn multifunction_bit_gates_functions_1_to_7() {
    let mut cfg = FakeConfigSpace::new();
    cfg.add_function(bdf(0, 2, 0), 0x8086, 0x100e, 0x02_00_00).set_header_type(0x80);
    cfg.add_function(bdf(0, 2, 1), 0x8086, 0x100f, 0x02_00_00);
    cfg.add_function(bdf(0, 2, 5), 0x8086, 0x1010, 0x02_00_00);
    // Device 3 does not claim multi-function: its function 1 must not be probed.
    cfg.add_function(bdf(0, 3, 0), 0x1234, 0x0001, 0x01_00_00);
    cfg.add_function(bdf(0, 3, 1), 0x1234, 0x0002, 0x01_00_00);
    let found: Vec<String> = enumerate(&mut cfg, 0).unwrap().iter().map(|f| f.bdf.to_string()).collect();
    assert_eq!(found, ["00:02.0", "00:02.1", "00:02.5", "00:03.0"]);
}

#[test]
fn bridge_secondary_bus_is_scanned() {
    let mut cfg = FakeConfigSpace::new();
    cfg.add_function(bdf(0, 3, 0), 0x1b36, 0x0001, 0).make_bridge(0, 1);
    cfg.function_mut(bdf(0, 3, 0)).set_bar(0, BarKind::Mem32, 0x100);
    add_virtio_like(&mut cfg, bdf(1, 0, 0));
    let functions = enumerate(&mut cfg, 0).unwrap();
    assert_eq!(functions.len(), 2);
    assert!(functions[0].is_bridge());
    assert_eq!(functions[0].secondary_bus(), Some(1));
    assert_eq!((functions[0].upstream, functions[1].upstream), (None, Some(bdf(0, 3, 0))));
    assert_eq!(functions[0].class_code, 0x060400);
    assert_eq!(functions[0].bars.len(), 1);
    assert_eq!(functions[1].bdf, bdf(1, 0, 0));
}

#[test]
fn bridge_loops_terminate_with_a_problem() {
    let mut cfg = FakeConfigSpace::new();
    cfg.add_function(bdf(0, 1, 0), 0x1b36, 0x0001, 0).make_bridge(0, 1);
    cfg.add_function(bdf(1, 0, 0), 0x1b36, 0x0001, 0).make_bridge(1, 0x00);
    cfg.add_function(bdf(1, 1, 0), 0x1b36, 0x0001, 0).make_bridge(1, 1);
    let functions = enumerate(&mut cfg, 0).unwrap();
    assert_eq!(functions.len(), 3);
    assert_eq!(functions[1].problems, ["secondary bus number not assigned"]);
    assert_eq!(functions[2].problems, ["secondary bus 01 already scanned: not followed"]);
}

#[test]
fn capability_loop_terminates() {
    let mut cfg = FakeConfigSpace::new();
    let function = cfg.add_function(bdf(0, 4, 0), 0x1234, 0x5678, 0);
    let pm = function.add_capability(0x01, &[0x03, 0x00, 0, 0, 0, 0]);
    let msi = function.add_capability(0x05, &[0, 0]);
    function.poke(u16::from(msi) + 1, u32::from(msi), Width::Byte); // MSI points at itself
    let functions = enumerate(&mut cfg, 0).unwrap();
    let f = &functions[0];
    assert_eq!(f.capabilities.len(), 2);
    assert_eq!(f.capabilities[0].offset, pm);
    assert_eq!(f.problems, [format!("capability list loops at {msi:#04x}")]);
}

#[test]
fn capability_pointer_into_header_stops_walk() {
    let mut cfg = FakeConfigSpace::new();
    let function = cfg.add_function(bdf(0, 4, 0), 0x1234, 0x5678, 0);
    function.add_capability(0x01, &[0x03, 0x00]);
    function.poke(CAPABILITIES_POINTER, 0x13, Width::Byte);
    let f = &enumerate(&mut cfg, 0).unwrap()[0];
    assert!(f.capabilities.is_empty());
    assert_eq!(f.problems, ["capability pointer 0x10 points into the header"]);
}

#[test]
fn registers_reading_all_ones_after_vendor_id_do_not_panic() {
    for header_type in [None, Some(0x00)] {
        let mut cfg = FakeConfigSpace::new();
        let function = cfg.add_function(bdf(0, 5, 0), 0x1234, 0x5678, 0);
        for offset in (0x04..0x1000).step_by(4) {
            function.poke(offset, u32::MAX, Width::Dword);
        }
        if let Some(header_type) = header_type {
            function.poke(HEADER_TYPE, header_type, Width::Byte);
        }
        function.enable_extended_space();
        let functions = enumerate(&mut cfg, 0).unwrap();
        assert_eq!(functions.len(), 1);
        assert!(!functions[0].problems.is_empty(), "{header_type:?}");
    }
}

#[test]
fn bar_sizing_restores_bar_and_command() {
    let mut cfg = FakeConfigSpace::new();
    let at = bdf(0, 1, 0);
    add_virtio_like(&mut cfg, at);
    let command = Command::MEMORY_SPACE | Command::BUS_MASTER | Command::INTERRUPT_DISABLE;
    let function = cfg.function_mut(at);
    function.set_bar_address(1, 0x8000_1000).set_bar_address(4, 0x2100_0000_4000);
    function.set_command(command);
    let before: Vec<u32> = (0..6).map(|i| function.peek(bar_offset(i), Width::Dword)).collect();
    let f = &enumerate(&mut cfg, 0).unwrap()[0];
    let function = cfg.function(at);
    let after: Vec<u32> = (0..6).map(|i| function.peek(bar_offset(i), Width::Dword)).collect();
    assert_eq!(before, after);
    assert_eq!(function.peek(COMMAND, Width::Word), u32::from(command.bits()));
    assert_eq!(f.command, command.bits());
    assert_eq!(cfg.decode_violations, 0);
    assert!(cfg.writes.iter().any(|w| w.1 == bar_offset(4) && w.3 == u32::MAX));
    assert_eq!(f.bar(1).unwrap().bus_addr, 0x8000_1000);
    assert_eq!(f.bar(4).unwrap().bus_addr, 0x2100_0000_4000);
}

#[test]
fn io_bar_and_64bit_bar_in_last_slot() {
    let mut cfg = FakeConfigSpace::new();
    let function = cfg.add_function(bdf(0, 6, 0), 0x1234, 0x5678, 0);
    function.set_bar(0, BarKind::Io, 0x20).set_bar(5, BarKind::Mem64, 0x1000);
    let f = &enumerate(&mut cfg, 0).unwrap()[0];
    assert_eq!(f.bars.len(), 1);
    assert_eq!((f.bars[0].kind, f.bars[0].size, f.bars[0].prefetchable), (BarKind::Io, 0x20, false));
    assert_eq!(f.problems, ["BAR5: 64-bit BAR in the last BAR register"]);
}

#[test]
fn sriov_and_ari_extended_capabilities_are_parsed() {
    let mut cfg = FakeConfigSpace::new();
    let function = cfg.add_function(bdf(0, 7, 0), 0x8086, 0x10fb, 0x02_00_00);
    function.add_capability(0x10, &[0x02, 0x00]);
    function.add_extended_capability(0x000e, 1, &[0; 4]);
    let mut sriov = [0u8; 0x3c];
    for (relative, value) in [(0x0c, 8u16), (0x0e, 64), (0x10, 4), (0x14, 0x80), (0x16, 2), (0x1a, 0x10ed)] {
        sriov[relative - 4..relative - 2].copy_from_slice(&value.to_le_bytes());
    }
    let sriov_offset = function.add_extended_capability(0x0010, 1, &sriov);
    let f = &enumerate(&mut cfg, 0).unwrap()[0];
    let kinds: Vec<_> = f.extended_capabilities.iter().map(|c| (c.kind, c.version, c.offset)).collect();
    assert_eq!(
        kinds,
        [
            (ExtCapabilityKind::AlternativeRoutingId, 1, 0x100),
            (ExtCapabilityKind::SingleRootIov, 1, sriov_offset)
        ]
    );
    let expected = SriovInfo {
        total_vfs: 64,
        initial_vfs: 8,
        num_vfs: 4,
        vf_offset: 0x80,
        vf_stride: 2,
        vf_device_id: 0x10ed,
    };
    assert_eq!(f.sriov, Some(expected));
    assert_eq!(f.capability_names(), "pcie,ari,sriov");
}

#[test]
fn extended_capability_loop_terminates() {
    let mut cfg = FakeConfigSpace::new();
    let function = cfg.add_function(bdf(0, 8, 0), 0x1234, 0x5678, 0);
    function.add_capability(0x10, &[0x02, 0x00]);
    function.add_extended_capability(0x0001, 2, &[0; 8]);
    let second = function.add_extended_capability(0x0003, 1, &[0; 8]);
    function.poke(second, 0x0003 | 1 << 16 | 0x100 << 20, Width::Dword); // back to the first
    let f = &enumerate(&mut cfg, 0).unwrap()[0];
    assert_eq!(f.extended_capabilities.len(), 2);
    assert_eq!(f.problems, ["extended capability list loops or escapes at 0x100"]);
}

#[test]
fn conventional_function_extended_reads_fail_quietly() {
    let mut cfg = FakeConfigSpace::new();
    let function = cfg.add_function(bdf(0, 9, 0), 0x1234, 0x5678, 0);
    function.add_capability(0x10, &[0x02, 0x00]); // PCIe cap but only 256 bytes of config space
    let f = &enumerate(&mut cfg, 0).unwrap()[0];
    assert!(f.extended_capabilities.is_empty());
    assert!(f.problems.is_empty());
}

#[test]
fn vendor_read_failure_skips_slot_and_continues() {
    let mut cfg = FakeConfigSpace::new();
    cfg.add_function(bdf(0, 1, 0), 0x1234, 0x0001, 0);
    cfg.add_function(bdf(0, 2, 0), 0x1234, 0x0002, 0);
    cfg.fail_accesses(bdf(0, 1, 0), -3);
    let functions = enumerate(&mut cfg, 0).unwrap();
    assert_eq!(functions.len(), 1);
    assert_eq!(functions[0].bdf, bdf(0, 2, 0));
}

#[test]
fn unusable_config_access_is_an_error() {
    let mut cfg = FakeConfigSpace::new();
    cfg.add_function(bdf(0, 0, 0), 0x1234, 0x0001, 0);
    cfg.fail_accesses(bdf(0, 0, 0), -3);
    let error = ConfigError::Failed { status: -3 };
    assert_eq!(enumerate(&mut cfg, 0), Err(PciError::Config { bdf: bdf(0, 0, 0), offset: 0, error }));
}

#[test]
fn msix_table_in_missing_bar_is_a_problem() {
    let mut cfg = FakeConfigSpace::new();
    let function = cfg.add_function(bdf(0, 1, 0), 0x1234, 0x0001, 0);
    function.add_capability(0x11, &[0x07, 0x00, 0x02, 0, 0, 0, 0x02, 0x10, 0, 0]);
    let f = &enumerate(&mut cfg, 0).unwrap()[0];
    assert_eq!(f.msix.map(|m| (m.table_size, m.table_bar, m.pba_offset)), Some((8, 2, 0x1000)));
    assert_eq!(
        f.problems,
        ["MSI-X table in BAR2, which is not implemented", "MSI-X PBA in BAR2, which is not implemented"]
    );
}
