//! Every PE's DMA windows, set up by `drivers::iommu::set_up` and reported.
//!
//! The policy — which node is the PE's, whether a DDW is asked for, how big, what a warm
//! restart does with what it finds — is the driver's (`drivers::iommu::pe`), tested on the
//! host against the hypervisor model. This module feeds it the platform, times it and prints
//! what it says.

use arch_ppc64::{cpu, println};
use drivers::addr::PhysRange;
use drivers::cmdline::{Args, DdwPolicy};
use drivers::devices::dma_devices;
use drivers::devtree::platform::Platform;
use drivers::iommu::conformance::{hv_lines, PeConformance};
use drivers::iommu::handover::Handover;
use drivers::iommu::inject::SetUpFault;
use drivers::iommu::pe_report::{pe_lines, Line};
use drivers::iommu::plan::floor_log2;
use drivers::iommu::rtas::{BusyWait, Delay};
use drivers::iommu::{PeSetUp, Start};
use drivers::pci::stop_dma;

use crate::boundary::hypervisor::set_up_pe;
use crate::boundary::rtas::Firmware;
use crate::kv;
use crate::system::{Pe, Phb};
use crate::Timeline;
use alloc::format;
use alloc::vec::Vec;

/// Busy waits spin on the timebase.
pub struct TimebaseDelay {
    /// Timebase ticks per second.
    pub hz: u64,
}

impl Delay for TimebaseDelay {
    fn wait(&mut self, wait: BusyWait) {
        let ms = match wait {
            BusyWait::Immediately => return,
            BusyWait::Milliseconds(ms) => u64::from(ms),
        };
        let start = cpu::timebase();
        let ticks = self.hz / 1000 * ms;
        while cpu::timebase().wrapping_sub(start) < ticks {
            core::hint::spin_loop();
        }
    }
}

/// Sets up every PHB's PE and reports it; with `warm-restart=`, does it again as the next
/// kernel would, knowing only each PE's handover. Ends with the hypervisor conformance report
/// (`hv.*`) from what every set-up saw.
pub fn set_up_all(
    platform: &Platform,
    firmware: Firmware,
    phbs: &mut [Phb<'_>],
    args: &Args,
    hz: u64,
    timeline: &Timeline,
) {
    println!("== dma windows");
    let mut seen = Vec::new();
    for phb in phbs.iter_mut() {
        seen.push(set_up_one(platform, &platform.memory, firmware, phb, args, Start::Fresh, hz));
        timeline.mark(&format!("pe.{}", phb.index));
    }
    if let Some(policy) = args.warm_restart {
        println!("== dma windows, warm restart ({policy:?}: the DMA set-up runs again)");
        for phb in phbs.iter_mut() {
            // As after a kexec: the hypervisor keeps its windows and TCEs, the next kernel knows
            // only the handover (Linux passes it as `linux,direct64-ddr-window-info`).
            let found = phb.pe.take().and_then(|pe| handover(&pe));
            seen.push(set_up_one(
                platform,
                &platform.memory,
                firmware,
                phb,
                args,
                Start::Warm { policy, found },
                hz,
            ));
            timeline.mark(&format!("pe.{}.warm", phb.index));
        }
    }
    println!("== hypervisor");
    print_lines(hv_lines(platform, &seen));
}

fn print_lines(lines: Vec<Line>) {
    for line in lines {
        match line {
            Line::Kv(key, value) => kv!(key, "{value}"),
            Line::Say(text) => println!("  {text}"),
        }
    }
}

fn handover(pe: &Pe) -> Option<Handover> {
    pe.state.lock().dma().handover(pe.address?)
}

/// Sets up one PHB's PE (also for a PHB or first device hot-added in serving mode), its DDW
/// mapping `ram` (the boot tree's RAM, or at run time what memory DLPAR left).
pub fn set_up_one(
    platform: &Platform,
    ram: &[PhysRange],
    firmware: Firmware,
    phb: &mut Phb<'_>,
    args: &Args,
    start: Start,
    hz: u64,
) -> PeConformance {
    let devices = dma_devices(&phb.functions);
    let mut setup = PeSetUp::for_phb(platform, phb.info, &devices, args.ddw);
    setup.max_window_shift = args.ddw_max.and_then(floor_log2);
    setup.ram = ram;
    let fault = match args.ddw {
        DdwPolicy::SingleWindowFailingCreate => SetUpFault::FailFirstCreate,
        DdwPolicy::SingleWindowFailingMap => SetUpFault::FailFirstMap,
        _ => SetUpFault::None,
    };
    let begin = cpu::timebase();
    let phase = match start {
        Start::Fresh => "",
        Start::Warm { .. } => "warm restart",
    };
    let (state, report, evidence) = set_up_pe(firmware, &setup, start, fault, &mut TimebaseDelay { hz });
    let ticks = cpu::timebase().wrapping_sub(begin);
    print_lines(pe_lines(phb.index, &setup, &report, ticks, hz));
    let seen = PeConformance::observe(phb.index, phase, &setup, &report, &evidence);
    let has_window = state.lock().dma().has_window();
    phb.pe = Some(Pe { address: setup.ddw.ok(), state });
    if !has_window {
        stop_devices(phb);
    }
    seen
}

/// A PE left without any DMA window: every function on it stops DMA (Bus Master off).
fn stop_devices(phb: &mut Phb<'_>) {
    let index = phb.index;
    let Some(cfg) = phb.cfg.as_mut() else { return };
    for function in &mut phb.functions {
        match stop_dma(cfg, function) {
            Ok(()) => kv!(format!("pe.{index}.stopped"), "{}", function.bdf),
            Err(error) => kv!(format!("pe.{index}.stop_error"), "{}: {error}", function.bdf),
        }
    }
    println!("  PE {index}: no DMA window: its devices' bus mastering is off");
}
