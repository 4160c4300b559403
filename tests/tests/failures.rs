//! Failure paths: a panic and fatal interrupts must end QEMU with status 1 through
//! `ibm,os-term`, with the reason on the console; a hung guest must be killed by the harness's
//! timeout with the console kept for diagnosis.

use std::time::Duration;
use tests::qemu::{Firmware, Outcome, Scenario};

/// Boots `firmware` with `test=MODE` and checks the common failure contract.
fn boot_failing(firmware: Firmware, mode: &str) -> Outcome {
    let outcome = Scenario::new(&format!("fail-{mode}-{}", firmware.name()), firmware)
        .append(&format!("test={mode}"))
        .run();
    outcome
        .expect_exit(1)
        .expect_kv("boot.firmware", firmware.reported_name())
        .expect_kv("boot.bootargs", &format!("test={mode}"))
        .expect_kv("exit.status", "fail")
        // QEMU's rtas_ibm_os_term prints the kernel's message on stderr.
        .expect_console("OS terminated: ");
    if outcome.kv.all("exit.status").contains(&"ok") {
        outcome.fail("exit.status=ok printed on a failing run");
    }
    if !outcome.console.lines().any(|l| l.starts_with("error: ")) {
        outcome.fail("no `error: …` line before the exit");
    }
    outcome
}

fn check_panic(firmware: Firmware) -> Outcome {
    let outcome = boot_failing(firmware, "panic");
    outcome
        .expect_console("PANIC:")
        .expect_console("deliberate panic")
        .expect_console("OS terminated: panic: ");
    if outcome.kv.get("pci.count").is_none() {
        outcome.fail("the panic came before the PCI scan: test=panic is meant to fire after it");
    }
    outcome
}

#[test]
fn panic_vof() {
    let outcome = check_panic(Firmware::Vof);
    // The harness's failure message carries the status and the console tail.
    let err = std::panic::catch_unwind(|| {
        outcome.expect_exit(0);
    })
    .expect_err("expect_exit(0) must reject a run that exited with 1");
    let message = err.downcast_ref::<String>().cloned().unwrap_or_default();
    for needle in ["exit code Some(1)", "timed out: false", "deliberate panic"] {
        assert!(message.contains(needle), "{needle:?} missing from: {message}");
    }
}

#[test]
fn panic_slof() {
    check_panic(Firmware::Slof);
}

fn check_data_segment(firmware: Firmware) {
    let outcome = boot_failing(firmware, "segment");
    outcome.expect_kv("exception.vector", "0x380");
    let dar = outcome.require_hex("exception.dar");
    if dar != 0x0bad_0000_dead_0000 {
        outcome.fail(&format!("exception.dar={dar:#x}, expected 0xbad0000dead0000"));
    }
    outcome.expect_console("OS terminated: data segment interrupt");
}

#[test]
fn data_segment_vof() {
    check_data_segment(Firmware::Vof);
}

#[test]
fn data_segment_slof() {
    check_data_segment(Firmware::Slof);
}

#[test]
fn program_vof() {
    let outcome = boot_failing(Firmware::Vof, "program");
    outcome.expect_kv("exception.vector", "0x700").expect_console("OS terminated: program interrupt");
    let srr0 = outcome.require_hex("exception.srr0");
    let (start, size) = outcome
        .require("boot.image")
        .split_once('+')
        .and_then(|(s, n)| Some((tests::kv::parse_hex(s)?, tests::kv::parse_hex(n)?)))
        .unwrap_or_else(|| outcome.fail("boot.image is not BASE+SIZE"));
    if !(start..start + size).contains(&srr0) {
        outcome.fail(&format!("SRR0 {srr0:#x} is outside the kernel image"));
    }
}

/// The harness's own timeout: SLOF needs ~3.5 s to reach the kernel, so after two seconds
/// QEMU is killed, and what it printed so far is kept.
#[test]
fn hang_is_killed_and_reported() {
    let timeout = Duration::from_secs(2);
    let outcome = Scenario::new("fail-hang-slof", Firmware::Slof).timeout(timeout).run();
    if !outcome.timed_out || outcome.exit_code.is_some() {
        outcome.fail("expected the harness to time out and kill QEMU");
    }
    if outcome.wall < timeout || outcome.wall > timeout + Duration::from_secs(10) {
        outcome.fail("the kill did not happen right after the timeout");
    }
    if outcome.kv.get("exit.status").is_some() {
        outcome.fail("the guest finished before the timeout: not a hang");
    }
    let tail = outcome.tail(40);
    if !tail.contains("SLOF") {
        outcome.fail("the console tail lacks SLOF's banner");
    }
    let err = std::panic::catch_unwind(|| {
        outcome.expect_exit(0);
    })
    .expect_err("expect_exit must reject a timed-out run");
    let message = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("timed out: true"), "{message}");
    assert!(message.contains("SLOF"), "the tail is in the message: {message}");
}

/// A command line that contradicts itself is refused before anything is set up: the kernel
/// names both words and exits through `ibm,os-term`, rather than guess which one was meant.
#[test]
fn contradicting_kernel_arguments_are_refused() {
    let outcome = Scenario::new("fail-contradiction-vof", Firmware::Vof).append("ddw=off ddw=single").run();
    outcome
        .expect_exit(1)
        .expect_kv("exit.status", "fail")
        .expect_console("the kernel command line contradicts itself: ddw=single contradicts ddw=off");
    if outcome.kv.get("pe.0.ddw").is_some() || outcome.kv.get("pci.count").is_some() {
        outcome.fail("the kernel went on to set DMA up after refusing its command line");
    }
}
