//! One DMA setup per partitionable endpoint: the default window, plus a Dynamic DMA Window
//! when the PE's node offers `ibm,ddw-applicable`.
//!
//! The PE's node is the nearest node at or above a device's that carries `ibm,dma-window`
//! (Linux `pci_dma_find`, ../shared/docs/papr-ddw-facts.md §1.2). QEMU puts it on the PHB, so
//! a PHB is one PE shared by all its devices (§2.1); the DDW is created once per PE and used
//! by every device of it. The window is sized for the highest RAM address including
//! hot-pluggable memory (`Platform::max_possible_ram_addr`) and planned for 64-bit devices;
//! narrower devices use the default window. `ddw=off` on the command line skips DDWs.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use arch_ppc64::cpu;
use arch_ppc64::println;
use arch_ppc64::rtas::Rtas;
use drivers::addr::BusAddr;
use drivers::cmdline::Args;
use drivers::devtree::phb::{PciSpace, PhbInfo};
use drivers::devtree::platform::Platform;
use drivers::dma::PeDma;
use drivers::iommu::ddw::DefaultWindow;
use drivers::iommu::handover::{ensure_default, take_over, Handover, TakeOver, WarmPolicy};
use drivers::iommu::{
    enable_ddw, Ddw, DdwError, DdwMapping, DmaWindow, DynamicWindow, MultiTce, PeAddress, PeRequest,
    WindowLimit,
};
use drivers::pci::Function;
use spin::Mutex;

use crate::hv::{PeHypervisor, TimebaseDelay};
use crate::kv;

/// One PE (QEMU: one PHB) and its DMA state; `PES[i]` is PHB `i` (the report's `pe.<i>`).
pub struct Pe {
    /// The PE's RTAS address, when a DDW was asked for.
    pub address: Option<PeAddress>,
    /// The PE's DMA windows.
    pub dma: PeDma,
}

impl Pe {
    /// What a next kernel must be told about this PE's DDW.
    fn handover(&self) -> Option<Handover> {
        Some(Handover::of(self.address?, self.dma.ddw.as_ref()?))
    }
}

/// How a set-up run treats windows found from an earlier run.
type Warm = Option<(WarmPolicy, Vec<Option<Handover>>)>;

/// Every PE set up at boot, by PHB index.
pub static PES: Mutex<Vec<Pe>> = Mutex::new(Vec::new());

/// Sets up every PHB's PE and reports it.
pub fn setup_all(
    platform: &Platform,
    rtas: Rtas,
    fdt: &fdt::Fdt<'_>,
    functions: &[Vec<Function>],
    args: &Args,
) {
    println!("== dma windows");
    setup_runs(platform, rtas, fdt, functions, args, None);
    if let Some(policy) = args.warm_restart {
        // As after a kexec: the hypervisor keeps its windows and TCEs, this kernel keeps only
        // the handover (Linux passes it as `linux,direct64-ddr-window-info`, §1.9).
        let handovers: Vec<Option<Handover>> = PES.lock().drain(..).map(|pe| pe.handover()).collect();
        println!("== dma windows, warm restart ({policy:?}: the DMA set-up runs again)");
        setup_runs(platform, rtas, fdt, functions, args, Some((policy, handovers)));
    }
}

fn setup_runs(
    platform: &Platform,
    rtas: Rtas,
    fdt: &fdt::Fdt<'_>,
    functions: &[Vec<Function>],
    args: &Args,
    warm: Warm,
) {
    let multi_tce =
        if crate::report::multi_tce(platform) { MultiTce::Available } else { MultiTce::Unavailable };
    let hz = platform.cpus.timebase_hz.unwrap_or(512_000_000).max(1);
    let mut pes = PES.lock();
    for (index, phb) in platform.phbs.iter().enumerate() {
        let devices = functions.get(index).map_or(&[][..], Vec::as_slice);
        let found = warm.as_ref().map(|(policy, found)| (*policy, found.get(index).copied().flatten()));
        let (address, dma) = setup_pe(index, phb, platform, rtas, fdt, devices, args, multi_tce, hz, found);
        pes.push(Pe { address, dma });
    }
}

/// The nearest node at or above `path` that has `ibm,dma-window`.
fn dma_node<'p>(fdt: &fdt::Fdt<'_>, path: &'p str) -> Option<&'p str> {
    let mut at = path;
    loop {
        if fdt.find_node(at).is_some_and(|node| node.property("ibm,dma-window").is_some()) {
            return Some(at);
        }
        match at.rfind('/') {
            Some(0) | None => return None,
            Some(cut) => at = &at[..cut],
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn setup_pe(
    index: usize,
    phb: &PhbInfo,
    platform: &Platform,
    rtas: Rtas,
    fdt: &fdt::Fdt<'_>,
    devices: &[Function],
    args: &Args,
    multi_tce: MultiTce,
    hz: u64,
    warm: Option<(WarmPolicy, Option<Handover>)>,
) -> (Option<PeAddress>, PeDma) {
    let key = |name: &str| format!("pe.{index}.{name}");
    // The PE node of the first device (all of a QEMU PHB's devices share it).
    let first_device_path = devices.iter().find_map(|f| {
        phb.children
            .iter()
            .find(|n| n.bus == f.bdf.bus && n.device == f.bdf.device && n.function == f.bdf.function)
            .map(|n| format!("{}/{}", phb.path, n.name))
    });
    let node = first_device_path.as_deref().and_then(|p| dma_node(fdt, p)).unwrap_or(phb.path.as_str());
    kv!(key("node"), "{}", node);
    let mut dma = PeDma::default();
    match phb.dma_window.as_ref().map(DmaWindow::from_default) {
        Some(Ok(window)) => {
            kv!(key("default_liobn"), "{}", window.liobn());
            kv!(key("default_window"), "{}+{:#x}", window.bus_base(), window.size());
            kv!(key("default_page_shift"), "{}", window.page_shift());
            dma.default = Some(DynamicWindow::new(window, multi_tce));
        }
        Some(Err(e)) => kv!(key("default_error"), "the PHB's ibm,dma-window is unusable: {e}"),
        None => kv!(key("default_error"), "the PHB has no ibm,dma-window"),
    }
    let why_not: Option<String> = if args.ddw_off {
        Some("ddw=off on the kernel command line".into())
    } else if node != phb.path {
        Some(format!("the PE node {node} is below the PHB; per-device PEs are not handled yet"))
    } else if phb.ddw_applicable.is_none() {
        Some("the PE node has no ibm,ddw-applicable (the platform offers no DDW)".into())
    } else if devices.is_empty() {
        Some("no PCI function on this PHB needs DMA".into())
    } else {
        None
    };
    if let Some(why) = why_not {
        kv!(key("ddw"), "none");
        kv!(key("ddw.why"), "{why}");
        return (None, dma);
    }
    let (Some(applicable), Some(first)) = (phb.ddw_applicable, devices.first()) else { return (None, dma) };
    let extensions = phb.ddw_extensions.as_ref();
    let mut hv = PeHypervisor::new(rtas, applicable, extensions.and_then(|e| e.reset_token()));
    hv.fail_next_create = args.ddw_fail_after_remove;
    let pe = PeAddress { config_addr: first.bdf.config_addr(0), buid: phb.buid };
    // A dynamic window at bus 0 (replacing the default) must not hand out the 32-bit MMIO
    // window or QEMU's MSI doorbell page (papr-ddw-facts §2.1, §7).
    let mut holes: Vec<(BusAddr, u64)> = phb
        .ranges
        .iter()
        .filter(|r| r.space == PciSpace::Mem32)
        .map(|r| (BusAddr(r.bus_addr), r.size))
        .collect();
    holes.push((BusAddr(MSI_WINDOW), MSI_WINDOW_SIZE));
    // Devices whose drivers declare narrow masks keep the default window in use.
    let narrow_devices = devices.iter().filter(|f| crate::edu_test::is_edu(f)).count() as u32;
    let default = dma.default.as_ref().map(|d| DefaultWindow {
        window: *d.window(),
        live_pages: d.in_use(),
        narrow_devices,
    });
    let request = PeRequest {
        pe,
        extensions,
        ram: &platform.memory,
        ram_end: platform.max_possible_ram_addr(),
        device_mask_bits: 64,
        multi_tce,
        default,
        force_single_window: args.ddw_single,
        iova_holes: &holes,
    };
    let start = cpu::timebase();
    let mut delay = TimebaseDelay { hz };
    if let Some((policy, found)) = warm {
        warm_setup(index, &mut hv, &mut delay, &request, policy, found, &mut dma, start);
        return (Some(pe), dma);
    }
    let result = enable_ddw(&mut hv, &mut delay, &request);
    let ticks = cpu::timebase().wrapping_sub(start);
    report_result(index, &result, ticks, hz);
    let _ = dma.settle(result);
    (Some(pe), dma)
}

fn report_result(index: usize, result: &Result<Ddw, DdwError>, ticks: u64, hz: u64) {
    match result {
        Ok(ddw) => report_ddw(index, ddw, ticks, hz),
        Err(error) => report_failure(index, error),
    }
}

/// The second run of a warm restart: take over the window the first run left, or, if it
/// left none, make sure the described default window exists before the usual set-up.
#[allow(clippy::too_many_arguments)]
fn warm_setup(
    index: usize,
    hv: &mut PeHypervisor,
    delay: &mut TimebaseDelay,
    request: &PeRequest<'_>,
    policy: WarmPolicy,
    found: Option<Handover>,
    dma: &mut PeDma,
    start: u64,
) {
    let key = |name: &str| format!("pe.{index}.{name}");
    let default = dma.default.take();
    let Some(found) = found else {
        kv!(key("warm"), "no-window");
        match ensure_default(hv, delay, request) {
            Ok(restore) => {
                if restore.is_some() {
                    kv!(key("warm.reset"), "the described default window was gone; reset restored it");
                }
                dma.default = default;
                let result = enable_ddw(hv, delay, request);
                report_result(index, &result, cpu::timebase().wrapping_sub(start), delay.hz);
                let _ = dma.settle(result);
            }
            Err(error) => {
                kv!(key("warm"), "failed");
                kv!(key("warm.error"), "{error}");
            }
        }
        return;
    };
    kv!(key("warm.found"), "{} at {} slot {}", found.window.liobn(), found.window.bus_base(), found.slot);
    let result = take_over(hv, delay, request, &found, policy);
    let ticks = cpu::timebase().wrapping_sub(start);
    match &result {
        Ok(TakeOver::Reused { ddw, checked, remapped, instead_of }) => {
            kv!(key("warm"), "{}", if instead_of.is_some() { "reused-instead-of-removal" } else { "reused" });
            kv!(key("warm.checked"), "{checked}");
            kv!(key("warm.remapped"), "{}", if *remapped { "yes" } else { "no" });
            if let Some(error) = instead_of {
                kv!(key("warm.error"), "{error}");
            }
            report_ddw(index, ddw, ticks, delay.hz);
        }
        Ok(TakeOver::Replaced { reuse_error, clear_error, removal, restore, fresh }) => {
            kv!(key("warm"), "replaced");
            if let Some(error) = reuse_error {
                kv!(key("warm.reuse_error"), "{error}");
            }
            if let Some(error) = clear_error {
                kv!(key("warm.clear_error"), "{error}");
            }
            if let Some(error) = removal {
                kv!(key("warm.remove_error"), "{error}");
            }
            if restore.is_some() {
                kv!(key("warm.reset"), "restored");
            }
            report_result(index, fresh, ticks, delay.hz);
        }
        Err(error) => {
            kv!(key("warm"), "failed");
            kv!(key("warm.error"), "{error}");
            println!("  PE {index}: warm restart: {error}");
        }
    }
    let _ = dma.settle_take_over(&found, default, result);
}

/// QEMU's MSI doorbell bus address, inside the IOMMU's address space.
const MSI_WINDOW: u64 = 0x400_0000_0000;
/// The part of it kept out of dynamic windows.
const MSI_WINDOW_SIZE: u64 = 0x10_0000;

fn report_ddw(index: usize, ddw: &Ddw, ticks: u64, hz: u64) {
    let key = |name: &str| format!("pe.{index}.{name}");
    kv!(key("query.windows"), "{}", ddw.query.windows_available);
    kv!(key("query.largest_block"), "{:#x}", ddw.query.largest_block);
    kv!(key("query.page_sizes"), "{:#x}", ddw.query.page_size_mask);
    kv!(key("query.outputs"), "{}", ddw.outputs.count());
    let mode = match ddw.mapping {
        DdwMapping::Direct => "direct",
        DdwMapping::Dynamic(_) => "dynamic",
    };
    let w = &ddw.window;
    println!(
        "  PE {index}: {mode} DDW liobn {} at {} of 2^{} bytes in 2^{}-byte pages ({} TCEs in {} indirect + {} put calls)",
        w.liobn(),
        w.bus_base(),
        ddw.plan.window_shift,
        w.page_shift(),
        ddw.stats.tces,
        ddw.stats.indirect_calls,
        ddw.stats.put_calls
    );
    kv!(key("ddw"), "{mode}");
    kv!(key("ddw.liobn"), "{}", w.liobn());
    kv!(key("ddw.bus_base"), "{}", w.bus_base());
    kv!(key("ddw.page_shift"), "{}", w.page_shift());
    kv!(key("ddw.window_shift"), "{}", ddw.plan.window_shift);
    kv!(key("ddw.slot"), "{}", ddw.slot);
    kv!(key("ddw.limit"), "{}", limit_name(ddw.plan.limit));
    kv!(key("ddw.ranges"), "{}", ddw.ranges);
    kv!(key("ddw.tces"), "{}", ddw.stats.tces);
    kv!(key("ddw.indirect_calls"), "{}", ddw.stats.indirect_calls);
    kv!(key("ddw.put_calls"), "{}", ddw.stats.put_calls);
    kv!(key("ddw.ticks"), "{ticks}");
    kv!(key("ddw.us"), "{}", ticks.saturating_mul(1_000_000) / hz);
    if ddw.slot == 0 {
        kv!(key("default_removed"), "yes");
    }
}

fn report_failure(index: usize, error: &DdwError) {
    println!("  PE {index}: no DDW, staying on the default window: {error}");
    kv!(format!("pe.{index}.ddw"), "none");
    kv!(format!("pe.{index}.ddw.error"), "{error}");
    if let DdwError::AfterRemoval { restore, .. } = error {
        let state = match (restore.reset, restore.default_back, restore.cleared) {
            (None, true, None) => "restored",
            (None, true, Some(_)) => "restored-not-cleared",
            (None, false, _) => "reset-but-missing",
            (Some(_), ..) => "reset-failed",
        };
        kv!(format!("pe.{index}.default_restore"), "{state}");
    }
}

fn limit_name(limit: WindowLimit) -> &'static str {
    match limit {
        WindowLimit::Ram => "ram",
        WindowLimit::LargestBlock => "largest-block",
        WindowLimit::DeviceMask => "device-mask",
        WindowLimit::TceCount => "tce-count",
        WindowLimit::AddressSpace => "address-space",
    }
}
