//! Translation on: on POWER8 (hash), POWER9 and POWER10 (radix), under SLOF, VOF and
//! FDT-direct, the kernel runs its whole self-test (virtio-blk and `edu` MMIO, DMA) with
//! MSR[IR|DR] on; an access to an unmapped address is a storage interrupt taken with
//! translation on. Without 16 MiB hash pages POWER8 says why it stays in real mode.

use std::sync::Arc;

use tests::disk;
use tests::qemu::{Firmware, Outcome, Scenario};

const MSR_IR_DR: u64 = 0x30;

fn boot(cpu: &str, firmware: Firmware, append: &str) -> (Outcome, Arc<Vec<u8>>) {
    let image = Arc::new(disk::scratch_image(4 << 20, 0x6d6d_0000 ^ cpu.len() as u64));
    let name = format!("mmu-{}-{}-{}", cpu.to_lowercase(), firmware.name(), append.replace(['=', ' '], "-"));
    let mut scenario = Scenario::new(&name, firmware)
        .args(["-cpu", cpu])
        .virtio_blk_image("disk0", None, Arc::clone(&image), true)
        .device("edu");
    if !append.is_empty() {
        scenario = scenario.append(append);
    }
    (scenario.run(), image)
}

fn check_translated(cpu: &str, firmware: Firmware) {
    let (outcome, image) = boot(cpu, firmware, "");
    let (mode, pages) = if cpu == "POWER8" { ("hash", "16M") } else { ("radix", "1G,2M") };
    outcome
        .expect_ok()
        .expect_kv("mmu.mode", mode)
        .expect_kv("mmu.page_sizes", pages)
        .expect_kv("mmu.ail", "3");
    if firmware != Firmware::Bios {
        outcome.expect_kv("boot.cas", mode);
    }
    let msr = outcome.require_hex("mmu.msr");
    if msr & MSR_IR_DR != MSR_IR_DR {
        outcome.fail(&format!("mmu.msr={msr:#x}: translation is not on"));
    }
    if outcome.require_u64("mmu.io_windows") == 0 {
        outcome.fail("no PHB window was mapped");
    }
    outcome
        .expect_kv("selftest.status", "ok")
        .expect_kv("edu.0.status", "ok")
        .expect_kv("blk.0.status", "ok");
    outcome.expect_scratch_disk(0, "disk0", &image);
}

#[test]
fn power9_radix_on_every_firmware_path() {
    for firmware in [Firmware::Slof, Firmware::Vof, Firmware::Bios] {
        check_translated("POWER9", firmware);
    }
}

#[test]
fn power10_radix_on_every_firmware_path() {
    for firmware in [Firmware::Slof, Firmware::Vof, Firmware::Bios] {
        check_translated("POWER10", firmware);
    }
}

#[test]
fn power8_hash_on_every_firmware_path() {
    for firmware in [Firmware::Slof, Firmware::Vof, Firmware::Bios] {
        check_translated("POWER8", firmware);
    }
    let (outcome, _) = boot("POWER8", Firmware::Vof, "");
    // 2 GiB of RAM and QEMU's PHB windows in 16 MiB pages, one SLB entry per 1 TiB segment
    // plus the interrupt alias.
    if outcome.require_u64("mmu.hptes") < 128 || outcome.require_u64("mmu.slb_entries") < 2 {
        outcome.fail("too few hash entries for RAM and the PHB windows");
    }
}

/// Without 16 MiB hash pages (QEMU's default `cap-hpt-max-page-size`), POWER8 stays in real
/// mode and says why.
#[test]
fn power8_without_16m_pages_says_why() {
    let image = Arc::new(disk::scratch_image(4 << 20, 0x6d6d_0008));
    let outcome = Scenario::new("mmu-power8-no16m", Firmware::Vof)
        .args(["-cpu", "POWER8", "-M", "cap-hpt-max-page-size=64K"])
        .virtio_blk_image("disk0", None, Arc::clone(&image), true)
        .run();
    outcome.expect_ok().expect_kv("mmu.mode", "real").expect_kv("selftest.status", "ok");
    if !outcome.require("mmu.error").contains("16 MiB hash pages") {
        outcome.fail("mmu.error does not name the missing 16 MiB pages");
    }
    outcome.expect_scratch_disk(0, "disk0", &image);
}

#[test]
fn power8_unmapped_segment_is_a_data_segment_interrupt_with_translation_on() {
    let (outcome, _) = boot("POWER8", Firmware::Vof, "test=unmapped");
    outcome
        .expect_exit(1)
        .expect_kv("mmu.mode", "hash")
        .expect_kv("exception.vector", "0x380")
        .expect_kv("exception.dar", "0x100000000000")
        .expect_console("OS terminated: data segment interrupt");
    let msr = outcome.require_hex("exception.handler_msr");
    if msr & MSR_IR_DR != MSR_IR_DR {
        outcome.fail(&format!("exception.handler_msr={msr:#x}: expected translation on"));
    }
}

#[test]
fn an_unmapped_access_is_a_data_storage_interrupt_with_translation_on() {
    let (outcome, _) = boot("POWER9", Firmware::Vof, "test=unmapped");
    outcome
        .expect_exit(1)
        .expect_kv("mmu.mode", "radix")
        .expect_kv("exception.vector", "0x300")
        .expect_kv("exception.dar", "0x100000000000")
        // DSISR bit 1 (0x40000000): no translation found.
        .expect_kv("exception.dsisr", "0x40000000")
        .expect_console("OS terminated: data storage interrupt");
    for key in ["exception.srr1", "exception.handler_msr"] {
        let msr = outcome.require_hex(key);
        if msr & MSR_IR_DR != MSR_IR_DR {
            outcome
                .fail(&format!("{key}={msr:#x}: expected translation on (the interrupt relocated by AIL 3)"));
        }
    }
}

#[test]
fn mmu_off_keeps_real_mode() {
    let (outcome, _) = boot("POWER9", Firmware::Vof, "mmu=off");
    outcome.expect_ok().expect_kv("mmu.mode", "real").expect_kv("selftest.status", "ok");
    let _ = outcome.require("mmu.why");
}
