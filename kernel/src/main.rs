//! The pseries DDW unikernel: boot flow from firmware handoff to power-off.
//!
//! 1. `arch_ppc64` enters in 64-bit little-endian and calls [`kernel_main`].
//! 2. Under Open Firmware: claim the heap, instantiate RTAS, flatten the OF tree into an FDT.
//!    FDT-direct: take QEMU's FDT from r3 and call RTAS through `H_RTAS`.
//! 3. Parse the one FDT into a [`Platform`], switch the console to its vterm, install the
//!    exception vectors, turn translation on, print the report, enumerate PCI per PHB
//!    (assigning BARs where firmware did not), set up every PE's DMA windows, self-test each
//!    device's DMA, and leave with `power-off` (or `ibm,os-term` on any failure).
//!
//! The crate denies `unsafe_code`; [`boundary`] holds every `unsafe` block.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;
extern crate memfns;

mod boot_of;
mod boundary;
mod device_tests;
mod dma_setup;
mod exit;
mod image;
mod logger;
mod pci_config;
mod pci_scan;
mod report;
mod serve;
mod system;

use alloc::vec::Vec;
use arch_ppc64::boot::BootHandoff;
use arch_ppc64::exceptions::ExceptionFrame;
use arch_ppc64::{console, cpu, println};
use boundary::firmware::{claim_heap, handed_over_fdt, open_firmware, place_heap, qemu_rtas};
use boundary::memory::{heap_region, Reserved};
use boundary::rtas::Firmware;
use drivers::cmdline::{Args, ServeMode, TestMode};
use drivers::devtree::platform::Platform;
use drivers::pci::BridgeLayout;

/// The boot timeline: `boot.t.<step>=<timebase ticks since the first Rust instruction>`.
pub struct Timeline {
    entry: u64,
}

impl Timeline {
    /// Records that `step` is done now.
    pub fn mark(&self, step: &str) {
        kv!(alloc::format!("boot.t.{step}"), "{}", cpu::timebase().wrapping_sub(self.entry));
    }
}

/// Which firmware handed over control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FirmwareKind {
    Slof,
    Vof,
    FdtDirect,
}

impl FirmwareKind {
    /// Who lays out the buses behind PCI-to-PCI bridges: SLOF does (board-qemu's PCI scan
    /// numbers the buses and opens the windows), VOF and FDT-direct leave it to the kernel.
    fn bridge_layout(self) -> BridgeLayout {
        match self {
            FirmwareKind::Slof => BridgeLayout::Firmware,
            FirmwareKind::Vof | FirmwareKind::FdtDirect => BridgeLayout::Kernel,
        }
    }

    fn name(self) -> &'static str {
        match self {
            FirmwareKind::Slof => "slof",
            FirmwareKind::Vof => "vof",
            FirmwareKind::FdtDirect => "fdt",
        }
    }
}

/// The device tree and RTAS, however they were obtained.
struct Booted {
    kind: FirmwareKind,
    fdt: &'static [u8],
    firmware: Firmware,
    /// Firmware memory the kernel must leave alone (RTAS, the handed-over FDT).
    firmware_memory: Vec<(u64, u64)>,
}

/// The boot flow; `arch_ppc64` enters it through [`boundary::cpu`]'s `kernel_main`.
fn boot(handoff: BootHandoff) -> ! {
    logger::init();
    println!();
    println!("pseries-ddw kernel {} starting (MSR {:#x})", env!("CARGO_PKG_VERSION"), handoff.msr());
    let booted = match (open_firmware(&handoff), handed_over_fdt(&handoff)) {
        (Some(of), _) => boot_open_firmware(&of),
        (None, Some(fdt)) => boot_flattened_tree(fdt),
        (None, None) => {
            exit::fail(format_args!("firmware handed over neither an OF entry (r5) nor an FDT (r3)"))
        }
    };
    let fdt = match fdt::Fdt::new(booted.fdt) {
        Ok(fdt) => fdt,
        Err(e) => exit::fail(format_args!("the device tree does not parse: {e:?}")),
    };
    let platform = Platform::from_fdt(&fdt);
    let timeline = Timeline { entry: handoff.timebase() };
    timeline.mark("fdt");
    if let Some(vterm) = platform.vterm {
        console::set_vterm(vterm);
    }
    let tokens = platform.rtas.as_ref();
    exit::set_exit_path(exit::ExitPath {
        firmware: booted.firmware,
        power_off: tokens.and_then(|t| t.token("power-off")),
        os_term: tokens.and_then(|t| t.token("ibm,os-term")),
    });
    if let Err(status) = boundary::cpu::install_vectors(fatal_exception) {
        exit::fail(format_args!("H_SET_MODE (little-endian interrupts) failed with status {status}"));
    }
    let args = Args::parse(platform.bootargs.as_deref().unwrap_or(""));
    report_boot(&booted, &handoff, &args, &platform, &fdt);
    if let Some(conflict) = args.conflicts.first() {
        exit::fail(format_args!("the kernel command line contradicts itself: {conflict}"));
    }
    // From here on no MMIO is touched in real mode.
    let mmu = boundary::mmu::enable(&platform, args.mmu);
    timeline.mark("mmu");
    let hz = platform.cpus.timebase_hz.unwrap_or(512_000_000).max(1);
    match boundary::xics::init(&platform, booted.firmware) {
        Ok(what) => kv!("irq.controller", "{what}"),
        Err(why) => kv!("irq.controller", "none: {why}; device waits end on a timer"),
    }
    let mut phbs = pci_scan::scan_all(&platform, booted.firmware, booted.kind.bridge_layout());
    timeline.mark("pci");
    dma_setup::set_up_all(&platform, booted.firmware, &mut phbs, &args, hz, &timeline);
    timeline.mark("dma");
    let reserved = reserved_memory(&booted, &fdt);
    let failures = match args.bench_io {
        true => device_tests::bench::run(&platform, &phbs, &reserved, hz),
        false => device_tests::run(&platform, &phbs, &reserved, hz),
    };
    timeline.mark("selftest");
    run_test_mode(args.test);
    if failures > 0 {
        exit::fail(format_args!(
            "the DMA self-test failed on {failures} device(s); see the status lines above"
        ));
    }
    if args.serve != ServeMode::PowerOff {
        serve::serve(&platform, booted.firmware, &mut phbs, &reserved, mmu, hz, &args);
    }
    let ticks = cpu::timebase().wrapping_sub(handoff.timebase());
    kv!("boot.ticks", "{}", ticks);
    exit::power_off()
}

fn boot_open_firmware(of: &arch_ppc64::of::OpenFirmware) -> Booted {
    if let Err(e) = claim_heap(of) {
        exit::fail(format_args!(
            "Open Firmware would not give the kernel a heap: {}",
            boot_of::OfBootError::HeapClaim(e)
        ));
    }
    let result = match boot_of::boot(of) {
        Ok(result) => result,
        Err(e) => exit::fail(format_args!("Open Firmware boot step failed: {e}")),
    };
    let fdt: &'static [u8] = Vec::leak(result.fdt);
    let is_slof = fdt::Fdt::new(fdt).ok().is_some_and(|tree| {
        tree.find_node("/openprom")
            .and_then(|node| node.property("model"))
            .is_some_and(|model| model.value.starts_with(b"SLOF"))
    });
    let kind = if is_slof { FirmwareKind::Slof } else { FirmwareKind::Vof };
    kv!("boot.of_nodes", "{}", result.stats.nodes);
    kv!("boot.of_properties", "{}", result.stats.properties);
    kv!("boot.rtas_base", "{:#x}", result.rtas_region.0);
    kv!(
        "boot.cas",
        "{}",
        match result.cas {
            boot_of::Cas::Radix => "radix",
            boot_of::Cas::Hash => "hash",
            boot_of::Cas::Failed => "failed",
        }
    );
    Booted { kind, fdt, firmware: result.firmware, firmware_memory: alloc::vec![result.rtas_region] }
}

fn boot_flattened_tree(
    handed_over: Result<boundary::firmware::HandedOverFdt, boundary::firmware::FdtBootError>,
) -> Booted {
    let handed_over = match handed_over {
        Ok(fdt) => fdt,
        Err(e) => exit::fail(format_args!("the FDT handed over in r3 is unusable: {e}")),
    };
    let (addr, blob) = (handed_over.addr(), handed_over.blob());
    if let Err(e) = place_heap(blob) {
        exit::fail(format_args!("no room for the heap: {e}"));
    }
    kv!("boot.fdt_addr", "{:#x}", addr);
    let firmware_memory = alloc::vec![(addr, blob.len() as u64)];
    Booted { kind: FirmwareKind::FdtDirect, fdt: blob, firmware: qemu_rtas(&handed_over), firmware_memory }
}

/// Everything below the kernel's end (firmware, vectors, the image), the heap, firmware
/// regions and the FDT's reservations.
fn reserved_memory(booted: &Booted, fdt: &fdt::Fdt<'_>) -> Reserved {
    let mut reserved = Reserved::default();
    let (_, end) = image::bounds();
    reserved.add(0, end);
    if let Some((base, size)) = heap_region() {
        reserved.add(base, size);
    }
    for &(base, size) in &booted.firmware_memory {
        reserved.add(base, size);
    }
    for r in fdt.memory_reservations() {
        reserved.add(r.address() as u64, r.size() as u64);
    }
    reserved
}

fn report_boot(booted: &Booted, handoff: &BootHandoff, args: &Args, platform: &Platform, fdt: &fdt::Fdt<'_>) {
    println!("== boot");
    kv!("boot.firmware", "{}", booted.kind.name());
    let hcall_rtas = matches!(booted.firmware.method(), arch_ppc64::rtas::RtasMethod::QemuHcall);
    kv!("boot.rtas", "{}", if hcall_rtas { "h-rtas" } else { "instantiated" });
    if hcall_rtas {
        println!("  RTAS: QEMU's private H_RTAS hypercall (no firmware on the FDT-direct path)");
    }
    kv!("boot.bootargs", "{}", platform.bootargs.as_deref().unwrap_or(""));
    for word in &args.unknown {
        println!("  note: unknown kernel argument {word:?} ignored");
    }
    kv!("boot.fdt_bytes", "{}", booted.fdt.len());
    kv!("boot.fdt_reservations", "{}", fdt.memory_reservations().count());
    let (start, end) = image::bounds();
    kv!("boot.image", "{:#x}+{:#x}", start, end - start);
    if let Some((base, size)) = heap_region() {
        kv!("boot.heap", "{:#x}+{:#x}", base, size);
    }
    kv!("boot.entry_msr", "{:#x}", handoff.msr());
    kv!("cpu.pvr_running", "{:#010x}", cpu::pvr());
    report::platform(platform);
    for problem in &platform.problems {
        kv!("dt.problem", "{}", problem);
    }
}

fn run_test_mode(mode: Option<TestMode>) {
    match mode {
        None => {}
        Some(TestMode::Panic) => panic!("test=panic: deliberate panic requested on the command line"),
        Some(TestMode::DataSegment) => {
            // Real-mode reads outside RAM return 0 under QEMU instead of faulting, so the
            // invalid access is made with translation on and no translations present.
            let bad = 0x0bad_0000_dead_0000u64;
            let value = boundary::cpu::fault_data_segment(bad);
            exit::fail(format_args!(
                "test=segment: the load of {bad:#x} returned {value:#x} without an interrupt"
            ));
        }
        Some(TestMode::Unmapped) => {
            // 16 TiB: past RAM and below the PHB windows' region, mapped by nothing.
            let addr = 0x1000_0000_0000u64;
            let value = boundary::cpu::fault_unmapped(addr);
            exit::fail(format_args!(
                "test=unmapped: the load of {addr:#x} returned {value:#x} without an interrupt"
            ));
        }
        Some(TestMode::Program) => {
            boundary::cpu::fault_program();
            exit::fail(format_args!("test=program: the illegal instruction did not trap"));
        }
    }
}

fn fatal_exception(frame: &ExceptionFrame) -> ! {
    println!("FATAL: unexpected {} interrupt (vector {:#x})", frame.name(), frame.vector);
    kv!("exception.vector", "{:#x}", frame.vector);
    kv!("exception.srr0", "{:#x}", frame.srr0);
    kv!("exception.srr1", "{:#x}", frame.srr1);
    kv!("exception.dar", "{:#x}", frame.dar);
    kv!("exception.dsisr", "{:#x}", frame.dsisr);
    kv!("exception.r1", "{:#x}", frame.r1);
    // IR|DR set here means the interrupt was delivered with translation on (AIL = 3).
    kv!("exception.handler_msr", "{:#x}", cpu::msr());
    exit::fail(format_args!(
        "{} interrupt at {:#x} (SRR1 {:#x}, DAR {:#x}, DSISR {:#x})",
        frame.name(),
        frame.srr0,
        frame.srr1,
        frame.dar,
        frame.dsisr
    ))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("PANIC: {info}");
    exit::fail(format_args!("panic: {}", info.message()))
}
