//! Devices behind PCI-to-PCI bridges on every firmware path: a virtio-blk behind one QEMU
//! `pci-bridge` under SLOF (firmware's layout, kept and checked), VOF and FDT-direct (the
//! kernel numbers the buses, opens the windows and places the BARs), and one behind two nested
//! bridges. Each boot must reach `selftest.status=ok` with the disk's DMA through the PE's
//! Dynamic DMA Window in direct mode, judged by QEMU's trace: the bridges hold the bus numbers
//! and windows the kernel reports, QEMU mapped the disk's BARs where the kernel says, every DMA
//! translation is on the DDW at the identity offset, and no TCE hcall was made after the
//! window's one-time mapping of RAM. The scratch disk's image is checked on the host.

use std::sync::Arc;
use std::time::Duration;
use tests::bridges::{check_bridged, with_bridges};
use tests::disk;
use tests::kv::parse_hex;
use tests::qemu::{Firmware, Outcome, Scenario};
use tests::trace::{TceWrites, Trace};

/// TCG, xlate tracing, possibly two QEMUs at once on two shared cores.
const TIMEOUT: Duration = Duration::from_secs(240);
const TRACE: &[&str] =
    &["pci_cfg_*", "pci_update_mappings_*", "spapr_iommu_pci_*", "spapr_iommu_ddw_*", "spapr_iommu_xlate"];
/// A small scratch disk: the kernel reads it all and copies half of it.
const DISK_BYTES: usize = 4 << 20;

/// Who lays out what is behind the bridges on this path (`phb.0.bridge_layout`).
fn layout(firmware: Firmware) -> &'static str {
    match firmware {
        Firmware::Slof => "firmware",
        Firmware::Vof | Firmware::Bios => "kernel",
    }
}

/// Boots a scratch virtio-blk (the only device, so every DMA translation is its) in slot 1
/// behind `levels` nested bridges.
fn boot_behind(name: &str, firmware: Firmware, levels: usize, seed: u64) -> (Outcome, Arc<Vec<u8>>) {
    let image = Arc::new(disk::scratch_image(DISK_BYTES, seed));
    let scenario = Scenario::new(name, firmware).memory("1G").timeout(TIMEOUT).trace(TRACE.iter().copied());
    let (scenario, bus) = with_bridges(scenario, levels);
    let scenario = scenario
        .disk_image("disk0", Arc::clone(&image))
        .device(&format!("virtio-blk-pci,drive=disk0,disable-legacy=on,iommu_platform=on,bus={bus},addr=1"));
    (scenario.run(), image)
}

/// `blk.0` used the PE's DDW in direct mode: the offset is the DDW's bus base; QEMU
/// translated its DMA only on the DDW's LIOBN, none refused, each at the identity (offset =
/// physical) and one at every read buffer; and the DDW's TCE hcalls are exactly the ones the
/// kernel reports for mapping RAM once — none per I/O.
fn check_direct_dma(outcome: &Outcome, trace: &Trace) {
    outcome.expect_kv("pe.0.ddw", "direct").expect_kv("blk.0.dma", "direct").expect_kv("blk.0.pe", "0");
    let bus_base = outcome.require_hex("pe.0.ddw.bus_base");
    let liobn = outcome.require_hex("pe.0.ddw.liobn");
    if outcome.require_hex("blk.0.dma_offset") != bus_base {
        outcome.fail(&format!("blk.0.dma_offset is not the DDW's bus base {bus_base:#x}"));
    }
    let tces = outcome.require_u64("pe.0.ddw.tces");
    let puts = outcome.require_u64("pe.0.ddw.put_calls");
    let wanted = TceWrites {
        puts,
        indirect_calls: outcome.require_u64("pe.0.ddw.indirect_calls"),
        indirect_tces: tces - puts,
        stuff_calls: 0,
        failed: 0,
    };
    let writes = trace.tce_writes(liobn).unwrap_or_else(|why| outcome.fail(&format!("QEMU's trace: {why}")));
    if writes != wanted {
        outcome.fail(&format!(
            "TCE hcalls QEMU traced on the DDW {liobn:#x}: {writes:?}; mapping RAM once is {wanted:?}"
        ));
    }
    let xlates = trace.xlates().unwrap_or_else(|why| outcome.fail(&format!("QEMU's trace: {why}")));
    let odd: Vec<_> = xlates
        .iter()
        .filter(|x| x.liobn != liobn || x.perm == 0 || x.translated != x.offset & !x.mask)
        .take(5)
        .collect();
    if xlates.len() < 64 || !odd.is_empty() {
        outcome.fail(&format!(
            "{} DMA translations; not on the DDW {liobn:#x}, refused or not the identity: {odd:x?}",
            xlates.len()
        ));
    }
    let buffers = outcome.require("blk.0.buffers");
    for buffer in buffers.split(',') {
        let address = parse_hex(buffer).unwrap_or_else(|| outcome.fail(&format!("blk.0.buffers={buffers}")));
        if !xlates.iter().any(|x| x.offset == address) {
            outcome.fail(&format!("no DMA through the DDW started at the read buffer {address:#x}"));
        }
    }
}

/// The disk at `device` behind `levels` bridges on `firmware`'s path boots to
/// `selftest.status=ok`: the chain judged by QEMU's trace, the bridges' bus numbers as
/// `buses` says (`(bridge, (primary, secondary, subordinate))`, innermost first), the DMA
/// direct through the DDW, the scratch copy on the host image.
fn check_behind(firmware: Firmware, levels: usize, device: &str, buses: &[(&str, (u8, u8, u8))]) {
    let name = format!("bridges-{levels}-virtio-blk-{}", firmware.name());
    let seed = 0xb41d_0000 ^ (levels as u64) << 8 ^ firmware as u64;
    let (outcome, image) = boot_behind(&name, firmware, levels, seed);
    outcome
        .expect_ok()
        .expect_kv("selftest.status", "ok")
        .expect_kv("boot.firmware", firmware.reported_name())
        .expect_kv("phb.0.bridges", &levels.to_string())
        .expect_kv("pci.count", &(levels + 1).to_string())
        .expect_kv("blk.0.bdf", device);
    let trace = outcome.parsed_trace();
    let chain = check_bridged(&outcome, &trace, device, levels, layout(firmware));
    let found: Vec<(&str, (u8, u8, u8))> = chain.iter().map(|b| (b.bdf.as_str(), b.buses)).collect();
    if found != buses {
        outcome.fail(&format!(
            "bridges (innermost first, primary/secondary/subordinate) {found:?}, expected {buses:?}"
        ));
    }
    // Whoever laid the buses out placed every BAR, the bridges' own included.
    let by = layout(firmware);
    for function in &outcome.kv.pci_functions() {
        let odd: Vec<&String> = function
            .bars
            .iter()
            .filter(|(_, bar, _)| bar.as_ref().is_none_or(|b| b.by != by))
            .map(|(_, _, raw)| raw)
            .collect();
        if !odd.is_empty() {
            outcome.fail(&format!("{} BARs not placed by {by}: {odd:?}", function.bdf));
        }
    }
    check_direct_dma(&outcome, &trace);
    outcome.expect_scratch_disk(0, "disk0", &image);
}

/// One bridge: at 00:00.0 (the only root device), to bus 1; the disk at 01:01.0.
const ONE_BRIDGE: &[(&str, (u8, u8, u8))] = &[("00:00.0", (0, 1, 1))];

#[test]
fn virtio_blk_behind_a_bridge_slof() {
    check_behind(Firmware::Slof, 1, "01:01.0", ONE_BRIDGE);
}

#[test]
fn virtio_blk_behind_a_bridge_vof() {
    check_behind(Firmware::Vof, 1, "01:01.0", ONE_BRIDGE);
}

#[test]
fn virtio_blk_behind_a_bridge_bios() {
    check_behind(Firmware::Bios, 1, "01:01.0", ONE_BRIDGE);
}

/// Two nested bridges under VOF, where the kernel numbers the buses depth first: 00:00.0 to
/// buses 1–2, 01:02.0 to bus 2, the disk at 02:01.0; the inner windows inside the outer ones.
#[test]
fn virtio_blk_behind_two_nested_bridges_vof() {
    check_behind(Firmware::Vof, 2, "02:01.0", &[("01:02.0", (1, 2, 2)), ("00:00.0", (0, 1, 2))]);
}
