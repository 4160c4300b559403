//! The pseries DDW unikernel: boot flow from firmware handoff to power-off.
//!
//! 1. `arch_ppc64` enters in 64-bit little-endian and calls [`kernel_main`].
//! 2. Under Open Firmware: claim the heap, instantiate RTAS, flatten the OF tree into an FDT.
//!    FDT-direct: take QEMU's FDT from r3 and call RTAS through `H_RTAS`.
//! 3. Parse the one FDT into a [`Platform`], switch the console to its vterm, install the
//!    exception vectors, print the report, enumerate PCI per PHB (assigning BARs where firmware
//!    did not), and leave with `power-off` (or `ibm,os-term` on any failure).
#![no_std]
#![no_main]

extern crate alloc;
extern crate memfns;

mod blk;
mod boot_fdt;
mod boot_of;
mod dma_context;
mod edu_test;
mod exit;
mod heap;
mod hv;
mod image;
mod logger;
mod mmu_setup;
mod pci_config;
mod pci_scan;
mod pe_setup;
mod phys;
mod report;
mod selftest;
mod virtio_hal;

use alloc::vec::Vec;
use arch_ppc64::boot::{BootHandoff, EntryKind};
use arch_ppc64::exceptions::{self, ExceptionFrame};
use arch_ppc64::of::OpenFirmware;
use arch_ppc64::rtas::{Rtas, RtasMethod};
use arch_ppc64::{console, cpu, println};
use drivers::cmdline::{Args, TestMode};
use drivers::devtree::platform::Platform;

/// Which firmware handed over control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Firmware {
    Slof,
    Vof,
    FdtDirect,
}

impl Firmware {
    fn name(self) -> &'static str {
        match self {
            Firmware::Slof => "slof",
            Firmware::Vof => "vof",
            Firmware::FdtDirect => "fdt",
        }
    }
}

/// The device tree and RTAS, however they were obtained.
struct Booted {
    firmware: Firmware,
    fdt: &'static [u8],
    rtas: RtasMethod,
    /// Firmware memory the kernel must leave alone (RTAS, the handed-over FDT).
    firmware_memory: Vec<(u64, u64)>,
}

#[no_mangle]
fn kernel_main(handoff: BootHandoff) -> ! {
    logger::init();
    println!();
    println!("pseries-ddw kernel {} starting (MSR {:#x})", env!("CARGO_PKG_VERSION"), handoff.msr);
    let booted = match handoff.kind() {
        EntryKind::OpenFirmware { entry } => boot_open_firmware(entry),
        EntryKind::FlattenedTree { fdt } => boot_flattened_tree(fdt),
        EntryKind::Unknown => {
            exit::fail(format_args!("firmware handed over neither an OF entry (r5) nor an FDT (r3)"))
        }
    };
    let fdt = match fdt::Fdt::new(booted.fdt) {
        Ok(fdt) => fdt,
        Err(e) => exit::fail(format_args!("the device tree does not parse: {e:?}")),
    };
    let platform = Platform::from_fdt(&fdt);
    if let Some(vterm) = platform.vterm {
        console::set_vterm(vterm);
    }
    // SAFETY: the method comes from instantiate-rtas (OF) or is QEMU's H_RTAS (FDT-direct).
    let rtas = unsafe { Rtas::new(booted.rtas) };
    let tokens = platform.rtas.as_ref();
    exit::set_exit_path(exit::ExitPath {
        rtas,
        power_off: tokens.and_then(|t| t.token("power-off")),
        os_term: tokens.and_then(|t| t.token("ibm,os-term")),
    });
    // SAFETY: firmware is no longer called (OF was left in boot_open_firmware) and the
    // kernel lives at 0x400000, so the vector page at 0 is free.
    if let Err(status) = unsafe { exceptions::install(fatal_exception) } {
        exit::fail(format_args!("H_SET_MODE (little-endian interrupts) failed with status {status}"));
    }
    let args = Args::parse(platform.bootargs.as_deref().unwrap_or(""));
    report_boot(&booted, &handoff, &args, &platform, &fdt);
    // From here on no MMIO is touched in real mode.
    mmu_setup::enable(&platform, args.mmu_off);
    let functions = pci_scan::scan_all(&platform, rtas);
    pe_setup::setup_all(&platform, rtas, &fdt, &functions, &args);
    let hz = platform.cpus.timebase_hz.unwrap_or(512_000_000).max(1);
    let failures = selftest::run(&platform, rtas, &functions, &reserved_memory(&booted, &fdt), hz);
    run_test_mode(args.test);
    if failures > 0 {
        exit::fail(format_args!(
            "the DMA self-test failed on {failures} device(s); see the status lines above"
        ));
    }
    let ticks = cpu::timebase().wrapping_sub(handoff.timebase);
    kv!("boot.ticks", "{}", ticks);
    exit::power_off()
}

fn boot_open_firmware(entry: u64) -> Booted {
    // SAFETY: r5 at entry is the live client-interface entry (SLOF/VOF contract).
    let mut of = unsafe { OpenFirmware::new(entry) };
    if let Err(e) = boot_of::claim_heap(&of) {
        exit::fail(format_args!("Open Firmware would not give the kernel a heap: {e}"));
    }
    let result = match boot_of::boot(&mut of) {
        Ok(result) => result,
        Err(e) => exit::fail(format_args!("Open Firmware boot step failed: {e}")),
    };
    let fdt: &'static [u8] = Vec::leak(result.fdt);
    let is_slof = fdt::Fdt::new(fdt).ok().is_some_and(|tree| {
        tree.find_node("/openprom")
            .and_then(|node| node.property("model"))
            .is_some_and(|model| model.value.starts_with(b"SLOF"))
    });
    let firmware = if is_slof { Firmware::Slof } else { Firmware::Vof };
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
    Booted { firmware, fdt, rtas: result.rtas, firmware_memory: alloc::vec![result.rtas_region] }
}

fn boot_flattened_tree(addr: u64) -> Booted {
    // SAFETY: r3 is the FDT QEMU placed in RAM for a -bios boot.
    let blob = match unsafe { boot_fdt::fdt_blob(addr) } {
        Ok(blob) => blob,
        Err(e) => exit::fail(format_args!("the FDT handed over at {addr:#x} is unusable: {e}")),
    };
    if let Err(e) = boot_fdt::place_heap(blob) {
        exit::fail(format_args!("no room for the heap: {e}"));
    }
    kv!("boot.fdt_addr", "{:#x}", addr);
    let firmware_memory = alloc::vec![(addr, blob.len() as u64)];
    Booted { firmware: Firmware::FdtDirect, fdt: blob, rtas: RtasMethod::QemuHcall, firmware_memory }
}

/// Everything below the kernel's end (firmware, vectors, the image), the heap, firmware
/// regions and the FDT's reservations.
fn reserved_memory(booted: &Booted, fdt: &fdt::Fdt<'_>) -> phys::Reserved {
    let mut reserved = phys::Reserved(Vec::new());
    let (_, end) = image::bounds();
    reserved.add(0, end);
    if let Some((base, size)) = heap::region() {
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
    kv!("boot.firmware", "{}", booted.firmware.name());
    kv!(
        "boot.rtas",
        "{}",
        match booted.rtas {
            RtasMethod::Instantiated { .. } => "instantiated",
            RtasMethod::QemuHcall => "h-rtas",
        }
    );
    if booted.rtas == RtasMethod::QemuHcall {
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
    if let Some((base, size)) = heap::region() {
        kv!("boot.heap", "{:#x}+{:#x}", base, size);
    }
    kv!("boot.entry_msr", "{:#x}", handoff.msr);
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
        Some(TestMode::DataStorage) => {
            // Real-mode reads outside RAM return 0 under QEMU instead of faulting, so the
            // invalid access is made with translation on and no translations present.
            let bad = 0x0bad_0000_dead_0000u64;
            println!("test=dsi: loading from unmapped address {bad:#x} with data translation on");
            // SAFETY: the vectors are installed and fatal_exception never returns.
            let value = unsafe { cpu::load_without_translation_tables(bad) };
            exit::fail(format_args!(
                "test=dsi: the load of {bad:#x} returned {value:#x} without an interrupt"
            ));
        }
        Some(TestMode::Unmapped) => {
            // 16 TiB: past RAM and below the PHB windows' region, mapped by nothing.
            let addr = 0x1000_0000_0000u64;
            println!(
                "test=unmapped: loading from {addr:#x}, which no translation maps (MSR {:#x})",
                cpu::msr()
            );
            // SAFETY: the vectors are installed and fatal_exception never returns.
            let value = unsafe { cpu::load(addr) };
            exit::fail(format_args!(
                "test=unmapped: the load of {addr:#x} returned {value:#x} without an interrupt"
            ));
        }
        Some(TestMode::Program) => {
            println!("test=program: executing an illegal instruction");
            // SAFETY: deliberately traps; the program-interrupt handler never returns.
            unsafe { core::arch::asm!(".long 0") };
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
