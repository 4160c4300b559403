//! Translation on: on POWER9 and POWER10, under SLOF, VOF and FDT-direct, the kernel runs its
//! whole self-test (virtio-blk and `edu` MMIO, DMA) with MSR[IR|DR] on through its radix tree;
//! an access to an unmapped address is a data storage interrupt taken with translation on.
//! POWER8 (hash MMU only) is reported as staying in real mode.

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

fn check_radix(cpu: &str, firmware: Firmware) {
    let (outcome, image) = boot(cpu, firmware, "");
    outcome
        .expect_ok()
        .expect_kv("mmu.mode", "radix")
        .expect_kv("mmu.page_sizes", "1G,2M")
        .expect_kv("mmu.ail", "3");
    if firmware != Firmware::Bios {
        outcome.expect_kv("boot.cas", "radix");
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
        check_radix("POWER9", firmware);
    }
}

#[test]
fn power10_radix_on_every_firmware_path() {
    for firmware in [Firmware::Slof, Firmware::Vof, Firmware::Bios] {
        check_radix("POWER10", firmware);
    }
}

/// POWER8 has only the hash MMU, which the kernel does not drive yet: it says so and runs
/// its self-test in real mode.
#[test]
fn power8_reports_real_mode() {
    for firmware in [Firmware::Vof, Firmware::Bios] {
        let (outcome, image) = boot("POWER8", firmware, "");
        outcome.expect_ok().expect_kv("mmu.mode", "real").expect_kv("selftest.status", "ok");
        if !outcome.require("mmu.why").contains("hash MMU is not implemented") {
            outcome.fail("mmu.why does not name the missing hash MMU");
        }
        outcome.expect_scratch_disk(0, "disk0", &image);
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
