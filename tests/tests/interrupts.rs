//! Device waits end on the device's interrupt: the kernel routes the virtio-blk's INTx through
//! its PHB's `interrupt-map` to the boot processor (`ibm,set-xive`, `ibm,int-on`), cedes, and
//! on the interrupt that ends the cede accepts it (`H_XIRR`), reads the device's ISR and ends
//! it (`H_EOI`). Judged by QEMU's own trace of its XICS presentation controller: every wake the
//! kernel counts is an interrupt QEMU presented and the guest accepted and ended for the disk's
//! source (QEMU 7.2 hw/intc/trace-events `xics_icp_accept`, `xics_icp_eoi`).

use std::sync::Arc;

use tests::disk;
use tests::qemu::{Firmware, Scenario};

/// QEMU's LSI for PHB 0, device 0, INTA (hw/ppc/spapr_irq.h `SPAPR_IRQ_PCI_LSI`).
const DISK_SOURCE: u32 = 0x1200;

fn waits_end_on_the_interrupt(firmware: Firmware) {
    // A 64 MiB scratch disk: enough requests (its CRCs, then the copy) that some wait.
    let image = Arc::new(disk::scratch_image(64 << 20, 0x4952_5100 | firmware as u64));
    let outcome = Scenario::new(&format!("irq-{}", firmware.name()), firmware)
        .virtio_blk_image("disk0", None, Arc::clone(&image), true)
        .trace(["xics_icp_accept", "xics_icp_eoi"])
        .run();
    outcome.expect_ok().expect_kv("blk.0.irq", &format!("{DISK_SOURCE:#x}"));
    outcome.expect_scratch_image("blk.0", "disk0", &image);
    let controller = outcome.kv.get("irq.controller").unwrap_or_default().to_string();
    if !controller.starts_with("XICS") {
        outcome.fail(&format!("irq.controller={controller:?}, expected the XICS"));
    }
    let wakes = outcome.require_u64("blk.0.irq_wakes");
    if wakes == 0 {
        outcome.fail("no wait for the disk ended on its interrupt");
    }
    let trace = outcome.parsed_trace();
    let source = format!("{DISK_SOURCE:x}");
    let accepted = trace.named("xics_icp_accept").filter(|e| e.rest.contains(&source)).count() as u64;
    let ended = trace.named("xics_icp_eoi").filter(|e| e.rest.contains(&source)).count() as u64;
    if accepted < wakes || ended < wakes {
        outcome.fail(&format!(
            "the kernel counts {wakes} wakes by source {DISK_SOURCE:#x}; QEMU's XICS accepted it \
             {accepted} times and saw {ended} EOIs"
        ));
    }
}

#[test]
fn virtio_blk_waits_end_on_its_interrupt_vof() {
    waits_end_on_the_interrupt(Firmware::Vof);
}

#[test]
fn virtio_blk_waits_end_on_its_interrupt_slof() {
    waits_end_on_the_interrupt(Firmware::Slof);
}

#[test]
fn virtio_blk_waits_end_on_its_interrupt_bios() {
    waits_end_on_the_interrupt(Firmware::Bios);
}
