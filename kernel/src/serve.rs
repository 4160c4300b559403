//! Serving mode (`serve`): after the self-test the kernel keeps running, polls RTAS
//! `check-exception` for hot-plug and EPOW events (no interrupt controller is needed: QEMU
//! dequeues pending logs by class whatever their interrupt did, hw/ppc/spapr_events.c
//! `rtas_event_log_dequeue`), and handles each one; an EPOW asking for shutdown
//! (`system_powerdown`) ends it, and the caller powers off.
//!
//! Handled today: memory add and remove (`drivers::dlpar::memory`: the LMBs acquired or
//! released through their DRCs, every direct DDW kept exact, and device DMA into newly added
//! memory checked with a disk read). Other hot-plug events are reported and ignored. Each event
//! prints `event.N.*` lines.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use arch_ppc64::{cpu, println};
use drivers::addr::PhysRange;
use drivers::cmdline::{Args, ServeMode};
use drivers::devices::dma_devices;
use drivers::devices::{driver_for, DeviceKind};
use drivers::devtree::phb::{phbs as phbs_in, PhbInfo};
use drivers::devtree::platform::Platform;
use drivers::dlpar::connector::Fragment;
use drivers::dlpar::drc::{
    configure_to_completion, DrcCall, DrcCalls, DrcError, DrcIndex, EntitySense, Indicator, IndicatorState,
    MAX_CONFIGURE_CALLS,
};
use drivers::dlpar::event::{parse_event, Action, HotplugEvent, Identifier, Resource, RtasEvent};
use drivers::dlpar::memory::{self, LmbOutcome, Memory, MemoryDma};
use drivers::dma::HotRam;
use drivers::iommu::MultiTce;
use drivers::iommu::Start;
use drivers::pci::hotplug::add_function;
use drivers::pci::{stop_dma, Bdf};

use crate::boundary::memory::{hot_added_buffer, place_buffers, PhysBuffer, Reserved};
use crate::boundary::mmu::{map_io_window, Mode};
use crate::boundary::rtas::{Firmware, RtasBuffer, ValueCall, EVENT_LOG_BYTES, WORK_AREA_BYTES};
use crate::device_tests::blk;
use crate::dma_setup::{self, TimebaseDelay};
use crate::kv;
use crate::pci_scan;
use crate::pci_scan::windows;
use crate::system::Phb;

/// `check-exception` mask: EPOW (0x40000000) and hot-plug (0x10000000) classes (LoPAR "Error
/// and Event Classes"; QEMU `EVENT_CLASS_MASK`). Hot-plug logs fall back to the EPOW class when
/// the hot-plug CAS bit was not negotiated, so both are asked for.
const EVENT_MASK: u32 = 0x5000_0000;
/// Milliseconds between polls when nothing is pending.
const POLL_MS: u64 = 10;
/// Bytes of the buffer placed in newly added memory for the disk read.
const TEST_BUFFER: u64 = drivers::selftest::disk::CRC_CHUNK;

/// The RTAS tokens serving needs.
struct Tokens {
    check_exception: u32,
    set_indicator: u32,
    get_sensor_state: u32,
    configure_connector: u32,
}

impl Tokens {
    fn from(platform: &Platform) -> Result<Self, String> {
        let rtas = platform.rtas.as_ref().ok_or("the device tree has no /rtas node")?;
        let token = |name: &str| rtas.token(name).ok_or(format!("/rtas has no {name} token"));
        Ok(Tokens {
            check_exception: token("check-exception")?,
            set_indicator: token("set-indicator")?,
            get_sensor_state: token("get-sensor-state")?,
            configure_connector: token("ibm,configure-connector")?,
        })
    }
}

/// Serves until an EPOW asks for power-off (then returns) or polling cannot go on.
#[allow(clippy::too_many_arguments)]
pub fn serve(
    platform: &Platform,
    firmware: Firmware,
    phbs: &mut Vec<Phb<'_>>,
    reserved: &Reserved,
    mmu: Mode,
    hz: u64,
    args: &Args,
) {
    let mode = args.serve;
    println!("== serving: hot-plug and power events (check-exception polling)");
    let tokens = match Tokens::from(platform) {
        Ok(tokens) => tokens,
        Err(why) => {
            kv!("serve.error", "{why}; serving mode ends");
            return;
        }
    };
    let (Some(mut log), Some(work)) = (RtasBuffer::new(EVENT_LOG_BYTES), RtasBuffer::new(WORK_AREA_BYTES))
    else {
        kv!("serve.error", "no heap memory below 4 GiB for the event buffer; serving mode ends");
        return;
    };
    let mut drcs = KernelDrcs { firmware, tokens: &tokens, work };
    let mut memory = platform.lmbs.clone().map(Memory::new);
    // Buffers kept alive in hot-plugged memory (`serve=hold`).
    let mut held: Vec<PhysBuffer> = Vec::new();
    kv!(
        "serve.memory",
        "{}",
        match &memory {
            Some(m) => format!("{} LMBs of {:#x} bytes", m.table().lmbs.len(), m.table().lmb_size),
            None => String::from("none: no ibm,dynamic-reconfiguration-memory"),
        }
    );
    kv!("serve.ready", "yes");
    let mut n = 0usize;
    loop {
        log.bytes_mut().fill(0);
        match firmware.check_exception(tokens.check_exception, EVENT_MASK, &mut log) {
            Ok(status) if status.0 == 0 => {}
            Ok(status) if status.0 == 1 => {
                wait_ms(hz, POLL_MS);
                continue;
            }
            Ok(status) => {
                kv!("serve.poll_error", "check-exception failed with status {status}; polling again in 1 s");
                wait_ms(hz, 1000);
                continue;
            }
            Err(error) => {
                kv!("serve.error", "check-exception could not be called ({error:?}); serving mode ends");
                return;
            }
        }
        let key = |name: &str| format!("event.{n}.{name}");
        match parse_event(log.bytes()) {
            Err(error) => {
                kv!(key("type"), "malformed");
                kv!(key("status"), "ignored: {error}");
            }
            Ok(RtasEvent::Epow(epow)) => {
                kv!(key("type"), "epow");
                kv!(key("epow.action"), "{}", epow.action);
                kv!(key("epow.modifier"), "{}", epow.modifier);
                if epow.asks_power_off() {
                    kv!(key("status"), "power-off");
                    println!(
                        "  event {n}: the platform asks for shutdown (EPOW action {}): powering off",
                        epow.action
                    );
                    return;
                }
                kv!(key("status"), "noted: no shutdown asked");
            }
            Ok(RtasEvent::Hotplug(event)) if event.resource == Resource::Pci => {
                let ram = ram_present(platform, memory.as_ref());
                pci_event(&key, event, &mut drcs, phbs, platform, &ram, reserved, hz, args);
            }
            Ok(RtasEvent::Hotplug(event)) if event.resource == Resource::Phb => {
                let ram = ram_present(platform, memory.as_ref());
                phb_event(&key, event, &mut drcs, phbs, platform, &ram, hz, args, mmu);
            }
            Ok(RtasEvent::Hotplug(event)) => {
                let ctx = Context { platform, phbs, mmu, hz, mode };
                hotplug(&key, event, &mut memory, &mut drcs, &ctx, &mut held);
            }
            Ok(RtasEvent::Other { event_type }) => {
                kv!(key("type"), "{event_type:#x}");
                kv!(key("status"), "ignored: not a hot-plug or EPOW event");
            }
        }
        n += 1;
    }
}

/// The RAM present now, which a DDW made at run time maps: the boot tree's, less and plus
/// what memory DLPAR has given back and taken since.
fn ram_present(platform: &Platform, memory: Option<&Memory>) -> Vec<PhysRange> {
    memory.map_or_else(|| platform.memory.clone(), |m| m.present(&platform.memory))
}

/// What event handling needs of the kernel.
struct Context<'a, 'p> {
    platform: &'a Platform,
    phbs: &'a [Phb<'p>],
    mmu: Mode,
    hz: u64,
    mode: ServeMode,
}

fn hotplug(
    key: &dyn Fn(&str) -> String,
    event: HotplugEvent,
    memory: &mut Option<Memory>,
    drcs: &mut KernelDrcs<'_>,
    ctx: &Context<'_, '_>,
    held: &mut Vec<PhysBuffer>,
) {
    let (platform, phbs, mmu, hz) = (ctx.platform, ctx.phbs, ctx.mmu, ctx.hz);
    let action = match event.action {
        Action::Add => "add",
        Action::Remove => "remove",
    };
    kv!(key("id"), "{:?}", event.id);
    let (Resource::Memory, Some(memory)) = (event.resource, memory.as_mut()) else {
        kv!(key("type"), "{:?}-{action}", event.resource);
        let why = match event.resource {
            Resource::Memory => "the device tree has no LMB table",
            _ => "only memory hot-plug is handled",
        };
        kv!(key("status"), "ignored: {why}");
        return;
    };
    kv!(key("type"), "memory-{action}");
    let live = held.iter().map(|b| PhysRange { base: b.phys(), size: b.bytes_len() as u64 }).collect();
    let mut dma = KernelMemoryDma { phbs, multi_tce: platform.multi_tce(), live };
    let report = match event.action {
        Action::Add => memory::add(memory, event.id, drcs, &mut dma),
        Action::Remove => memory::remove(memory, event.id, drcs, &mut dma),
    };
    let (mut tces, mut calls) = (0u64, 0u64);
    let mut added = Vec::new();
    let mut failed = 0usize;
    for (j, outcome) in report.lmbs.iter().enumerate() {
        kv!(key(&format!("lmb.{j}")), "{outcome}");
        match outcome {
            LmbOutcome::Added { range, .. } => added.push(*range),
            LmbOutcome::Removed { .. } => {}
            LmbOutcome::AddFailed { .. } | LmbOutcome::Kept { .. } => failed += 1,
        }
    }
    for (k, (span, windows)) in report.spans.iter().enumerate() {
        kv!(key(&format!("span.{k}")), "{:#x}+{:#x}", span.base.get(), span.size);
        for (pe, change) in windows {
            kv!(key(&format!("span.{k}.pe.{pe}")), "{change}");
            if let HotRam::Direct { stats, .. } = change {
                tces += stats.tces;
                calls += stats.indirect_calls + stats.put_calls + stats.stuff_calls;
            }
        }
    }
    kv!(key("lmbs"), "{}", report.lmbs.len());
    kv!(key("tces"), "{tces}");
    kv!(key("tce_calls"), "{calls}");
    let owned: Vec<String> =
        memory.owned_ranges().iter().map(|r| format!("{:#x}+{:#x}", r.base.get(), r.size)).collect();
    kv!(key("memory"), "{}", if owned.is_empty() { String::from("none") } else { owned.join(",") });
    if let Some(first) = added.first() {
        if let Some(buffer) = dma_into(key, *first, phbs, mmu, hz, held) {
            if ctx.mode == ServeMode::ServeHolding {
                kv!(key("dma.held"), "{}", buffer.phys());
                held.push(buffer);
            }
        }
    }
    kv!(
        key("status"),
        "{}",
        if failed == 0 { String::from("ok") } else { format!("{failed} LMB(s) not handled") }
    );
}

/// Reads the first virtio-blk disk into a buffer at the start of newly added `range`, through
/// its PE's window, and reports the CRCs (`event.N.blk.*`, compared with the disk on the host);
/// hands the buffer back once the disk is done with it.
fn dma_into(
    key: &dyn Fn(&str) -> String,
    range: PhysRange,
    phbs: &[Phb<'_>],
    mmu: Mode,
    hz: u64,
    held: &mut Vec<PhysBuffer>,
) -> Option<PhysBuffer> {
    if mmu == Mode::Hash {
        kv!(key("dma"), "skipped: the hash MMU maps only boot RAM");
        return None;
    }
    let disk = phbs.iter().find_map(|phb| {
        phb.functions
            .iter()
            .find(|f| driver_for(f.vendor_id, f.device_id).is_some_and(|d| d.kind == DeviceKind::VirtioBlk))
            .map(|f| (phb, f))
    });
    let Some((phb, function)) = disk else {
        kv!(key("dma"), "skipped: no virtio-blk disk");
        return None;
    };
    let Some(buffer) = hot_added_buffer(range, TEST_BUFFER) else {
        kv!(key("dma"), "skipped: the added range is smaller than the test buffer");
        return None;
    };
    kv!(key("dma.buffer"), "{}", buffer.phys());
    let mut buffers = [buffer];
    let result = blk::run(blk::DiskTest { name: key("blk"), phb, function, buffers: &mut buffers, hz });
    let [buffer] = buffers;
    match result {
        Ok(()) => {
            kv!(key("dma"), "ok");
            Some(buffer)
        }
        Err(why) => {
            // The disk may still reach the buffer: it stays held, so its memory is never given
            // back while a device could write into it.
            kv!(key("dma"), "{why}");
            kv!(key("dma.held"), "{}", buffer.phys());
            held.push(buffer);
            None
        }
    }
}

/// A PCI function added to or removed from a PHB the kernel already drives (LoPAR "DR for
/// PCI"; QEMU hw/ppc/spapr_pci.c `spapr_pci_plug`, `spapr_pci_unplug_request`). Add: the sensor
/// must read present, the DRC is unisolated, `ibm,configure-connector` run to completion, the
/// function enumerated and its BARs placed clear of the others; it shares its PE's windows (no
/// new window), and a disk is tested through them, then every other disk re-read. Remove: bus
/// mastering off (no driver holds a mapping between events), forgotten, the DRC isolated —
/// which completes QEMU's unplug.
#[allow(clippy::too_many_arguments)]
fn pci_event(
    key: &dyn Fn(&str) -> String,
    event: HotplugEvent,
    drcs: &mut KernelDrcs<'_>,
    phbs: &mut [Phb<'_>],
    platform: &Platform,
    ram: &[PhysRange],
    reserved: &Reserved,
    hz: u64,
    args: &Args,
) {
    let Some(drc) = single_drc(key, &event, "pci") else { return };
    let index = drc.0;
    // The PHB whose ibm,drc-indexes holds the DRC; the function's devfn is the low byte of the
    // index (QEMU hw/ppc/spapr_pci.c `drc_id_from_devfn`).
    let Some(phb) = phbs.iter_mut().find(|p| p.info.drc_indexes.contains(&index)) else {
        kv!(key("status"), "ignored: no PHB lists drc {drc} in ibm,drc-indexes");
        return;
    };
    let devfn = (index & 0xff) as u8;
    let Some(bdf) = Bdf::new(0, devfn >> 3, devfn & 7) else {
        kv!(key("status"), "ignored: drc {drc} names no device");
        return;
    };
    kv!(key("pci.phb"), "{}", phb.index);
    kv!(key("pci.bdf"), "{bdf}");
    let had_dma_device = !dma_devices(&phb.functions).is_empty();
    let status = match event.action {
        Action::Add => pci_add(key, drc, bdf, drcs, phb),
        Action::Remove => pci_remove(drc, bdf, drcs, phb),
    };
    // The PE's first DMA device (a PHB hot-added empty, say): its windows are set up now, as
    // Linux does at the first device's probe.
    if status.is_ok() && event.action == Action::Add && !had_dma_device {
        kv!(key("pe_set_up"), "yes: the PE's first DMA device");
        let _ = dma_setup::set_up_one(platform, ram, drcs.firmware, phb, args, Start::Fresh, hz);
    }
    match status {
        Ok(()) => {}
        Err(why) => {
            kv!(key("status"), "{why}");
            return;
        }
    }
    if event.action == Action::Add {
        // The new disk through its PE's windows, then every other disk again.
        let mut buffers: Vec<PhysBuffer> =
            place_buffers(&platform.memory, reserved, TEST_BUFFER).into_iter().map(|(_, b)| b).collect();
        let mut k = 0;
        for phb in phbs.iter() {
            for function in &phb.functions {
                if !driver_for(function.vendor_id, function.device_id)
                    .is_some_and(|d| d.kind == DeviceKind::VirtioBlk)
                {
                    continue;
                }
                let name = match (phb.info.drc_indexes.contains(&index), function.bdf == bdf) {
                    (true, true) => key("blk"),
                    _ => {
                        k += 1;
                        key(&format!("reread.{}", k - 1))
                    }
                };
                let result =
                    blk::run(blk::DiskTest { name: name.clone(), phb, function, buffers: &mut buffers, hz });
                kv!(
                    format!("{name}.status"),
                    "{}",
                    match result {
                        Ok(()) => String::from("ok"),
                        Err(why) => why,
                    }
                );
            }
        }
    }
    kv!(key("status"), "ok");
}

/// A PHB added or removed (LoPAR "DR for PHBs"; QEMU hw/ppc/spapr.c `spapr_phb_plug`,
/// `spapr_phb_unplug_request`). Add: a logical DRC (sensor "unusable", allocation and isolation
/// indicators on), configure-connector's fragment read by the boot tree's PHB parser, the bus
/// scanned and laid out as under VOF, its PE set up (a DDW once a DMA device is there). Remove:
/// every function stopped, the DDW cleared and removed (Linux `remove_ddw`), then isolate and
/// allocation off, which releases the PHB in QEMU.
#[allow(clippy::too_many_arguments)]
fn phb_event(
    key: &dyn Fn(&str) -> String,
    event: HotplugEvent,
    drcs: &mut KernelDrcs<'_>,
    phbs: &mut Vec<Phb<'_>>,
    platform: &Platform,
    ram: &[PhysRange],
    hz: u64,
    args: &Args,
    mmu: Mode,
) {
    let Some(drc) = single_drc(key, &event, "phb") else { return };
    let result = match event.action {
        Action::Add => phb_add(key, drc, drcs, phbs, platform, ram, hz, args, mmu),
        Action::Remove => phb_remove(key, drc, drcs, phbs, platform, hz),
    };
    kv!(
        key("status"),
        "{}",
        match result {
            Ok(()) => String::from("ok"),
            Err(why) => why,
        }
    );
}

#[allow(clippy::too_many_arguments)]
fn phb_add(
    key: &dyn Fn(&str) -> String,
    drc: DrcIndex,
    drcs: &mut KernelDrcs<'_>,
    phbs: &mut Vec<Phb<'_>>,
    platform: &Platform,
    ram: &[PhysRange],
    hz: u64,
    args: &Args,
    mmu: Mode,
) -> Result<(), String> {
    match drcs.sense(drc).map_err(|e| format!("{e}"))? {
        EntitySense::Unusable => {}
        other => return Err(format!("drc {drc} is not a PHB to take (dr-entity-sense {other:?})")),
    }
    drcs.set_indicator(Indicator::Allocation, drc, IndicatorState::On).map_err(|e| format!("{e}"))?;
    let undo = |drcs: &mut KernelDrcs<'_>, why: String| {
        let undone = drcs
            .set_indicator(Indicator::Isolation, drc, IndicatorState::Off)
            .and_then(|()| drcs.set_indicator(Indicator::Allocation, drc, IndicatorState::Off));
        match undone {
            Ok(()) => format!("{why}; the PHB was given back"),
            Err(e) => format!("{why}; giving the PHB back failed too: {e}"),
        }
    };
    if let Err(e) = drcs.set_indicator(Indicator::Isolation, drc, IndicatorState::On) {
        return Err(undo(drcs, format!("{e}")));
    }
    let fragment = match drcs.configure_fragment(drc) {
        Ok(fragment) => fragment,
        Err(why) => return Err(undo(drcs, why)),
    };
    let cells2 = 2u32.to_be_bytes();
    let blob = match fragment.to_fdt(&[("#address-cells", &cells2), ("#size-cells", &cells2)], &[]) {
        Ok(blob) => blob,
        Err(e) => return Err(undo(drcs, format!("the PHB's fragment does not make a tree: {e}"))),
    };
    let mut problems = Vec::new();
    let info = match fdt::Fdt::new(&blob).map(|tree| phbs_in(&tree, &mut problems)) {
        Ok(mut found) if found.len() == 1 => found.remove(0),
        Ok(found) => {
            return Err(undo(drcs, format!("the fragment holds {} PHBs: {problems:?}", found.len())))
        }
        Err(e) => return Err(undo(drcs, format!("the fragment's tree is unreadable: {e:?}"))),
    };
    for (k, problem) in problems.iter().enumerate() {
        kv!(key(&format!("phb.problem.{k}")), "{problem}");
    }
    // The PHB's description lives as long as the kernel: a hot-added PHB keeps a few hundred
    // bytes even after it goes (bounded by how many PHBs are ever added).
    let info: &'static PhbInfo = Box::leak(Box::new(info));
    let index = phbs.iter().map(|p| p.index + 1).max().unwrap_or(0);
    kv!(key("phb.index"), "{index}");
    kv!(key("phb.path"), "{}", info.path);
    kv!(key("phb.buid"), "{:#x}", info.buid);
    for range in &info.ranges {
        if let Err(why) = map_io_window(mmu, range.cpu_addr.get(), range.size) {
            return Err(undo(drcs, format!("its windows cannot be mapped: {why}")));
        }
    }
    let mut phb = pci_scan::scan_added(index, info, platform, drcs.firmware);
    let _ = dma_setup::set_up_one(platform, ram, drcs.firmware, &mut phb, args, Start::Fresh, hz);
    phbs.push(phb);
    Ok(())
}

fn phb_remove(
    key: &dyn Fn(&str) -> String,
    drc: DrcIndex,
    drcs: &mut KernelDrcs<'_>,
    phbs: &mut Vec<Phb<'_>>,
    platform: &Platform,
    hz: u64,
) -> Result<(), String> {
    let Some(position) = phbs.iter().position(|p| p.info.my_drc_index == Some(drc.0)) else {
        return Err(format!("ignored: no PHB with ibm,my-drc-index {drc}"));
    };
    let phb = &mut phbs[position];
    kv!(key("phb.index"), "{}", phb.index);
    if let Some(cfg) = phb.cfg.as_mut() {
        for function in &mut phb.functions {
            stop_dma(cfg, function).map_err(|e| format!("stopping {} failed: {e:?}", function.bdf))?;
        }
    }
    if let Some(pe) = &phb.pe {
        let removed = pe.state.lock().remove_ddw(platform.multi_tce(), &mut TimebaseDelay { hz })?;
        if let Some(liobn) = removed {
            kv!(key("ddw_removed"), "{liobn}");
        }
    }
    drcs.set_indicator(Indicator::Isolation, drc, IndicatorState::Off).map_err(|e| format!("{e}"))?;
    drcs.set_indicator(Indicator::Allocation, drc, IndicatorState::Off).map_err(|e| format!("{e}"))?;
    phbs.remove(position);
    Ok(())
}

/// Reports a PCI or PHB event's type and identifier (`what-add`, `what-remove`) and returns
/// the one DRC it names; anything else is reported as ignored.
fn single_drc(key: &dyn Fn(&str) -> String, event: &HotplugEvent, what: &str) -> Option<DrcIndex> {
    let action = match event.action {
        Action::Add => "add",
        Action::Remove => "remove",
    };
    kv!(key("type"), "{what}-{action}");
    kv!(key("id"), "{:?}", event.id);
    match event.id {
        Identifier::Index(index) => Some(DrcIndex(index)),
        _ => {
            kv!(key("status"), "ignored: a {what} event names one DRC index");
            None
        }
    }
}

fn pci_add(
    key: &dyn Fn(&str) -> String,
    drc: DrcIndex,
    bdf: Bdf,
    drcs: &mut KernelDrcs<'_>,
    phb: &mut Phb<'_>,
) -> Result<(), String> {
    match drcs.sense(drc).map_err(|e| format!("{e}"))? {
        EntitySense::Present => {}
        // QEMU leaves the add log queued when the device is deleted before the guest took it.
        EntitySense::Empty => return Err(format!("ignored: drc {drc} is empty now (the device went again)")),
        other => return Err(format!("drc {drc} is not a present function (dr-entity-sense {other:?})")),
    }
    drcs.set_indicator(Indicator::Isolation, drc, IndicatorState::On).map_err(|e| format!("{e}"))?;
    let undo = |drcs: &mut KernelDrcs<'_>, why: String| match drcs.set_indicator(
        Indicator::Isolation,
        drc,
        IndicatorState::Off,
    ) {
        Ok(()) => format!("{why}; the slot was isolated again"),
        Err(e) => format!("{why}; isolating the slot again failed too: {e}"),
    };
    let fragment = match drcs.configure_fragment(drc) {
        Ok(fragment) => fragment,
        Err(why) => return Err(undo(drcs, why)),
    };
    if let Some(node) = fragment.nodes.first() {
        kv!(key("pci.node"), "{}/{}", phb.info.path, node.name);
    }
    let Some(mut cfg) = phb.cfg.clone() else {
        return Err(undo(drcs, String::from("the PHB has no config-space access")));
    };
    let (function, assignments) = match add_function(&mut cfg, &phb.functions, &windows(phb.info), bdf) {
        Ok(added) => added,
        Err(why) => return Err(undo(drcs, why)),
    };
    kv!(key("pci.id"), "{:04x}:{:04x}", function.vendor_id, function.device_id);
    for a in &assignments {
        kv!(key(&format!("pci.bar.{}", a.bar_index)), "{:#x}+{:#x}", a.bus_addr, a.size);
    }
    phb.functions.push(function);
    Ok(())
}

fn pci_remove(drc: DrcIndex, bdf: Bdf, drcs: &mut KernelDrcs<'_>, phb: &mut Phb<'_>) -> Result<(), String> {
    let Some(position) = phb.functions.iter().position(|f| f.bdf == bdf) else {
        return Err(format!("ignored: no function at {bdf} on this PHB"));
    };
    if let Some(cfg) = phb.cfg.as_mut() {
        stop_dma(cfg, &mut phb.functions[position])
            .map_err(|e| format!("turning bus mastering off failed: {e:?}"))?;
    }
    phb.functions.remove(position);
    drcs.set_indicator(Indicator::Isolation, drc, IndicatorState::Off).map_err(|e| format!("{e}"))
}

/// Waits `ms` milliseconds with the processor given to the hypervisor (`H_CEDE` until the
/// decrementer ends the wait: an idle serving kernel takes no host CPU), never spinning: a
/// guest that only spins keeps QEMU from finishing an unplug (see `arch_ppc64::hcall::confer`).
fn wait_ms(hz: u64, ms: u64) {
    let start = cpu::timebase();
    let ticks = hz / 1000 * ms;
    loop {
        let passed = cpu::timebase().wrapping_sub(start);
        if passed >= ticks {
            break;
        }
        let left = u32::try_from(ticks - passed).unwrap_or(u32::MAX);
        let _ = arch_ppc64::hcall::cede_for(left);
    }
}

/// The DRC calls over RTAS.
struct KernelDrcs<'t> {
    firmware: Firmware,
    tokens: &'t Tokens,
    work: RtasBuffer,
}

impl KernelDrcs<'_> {
    fn status(
        &self,
        call: DrcCall,
        result: Result<arch_ppc64::rtas::RtasStatus, arch_ppc64::rtas::RtasCallError>,
    ) -> Result<(), DrcError> {
        match result {
            Ok(status) if status.0 == 0 => Ok(()),
            Ok(status) => Err(DrcError { call, status: status.0 }),
            Err(_) => Err(DrcError { call, status: i32::MIN }),
        }
    }
}

impl KernelDrcs<'_> {
    /// `ibm,configure-connector` to completion, keeping the fragment it describes.
    fn configure_fragment(&mut self, drc: DrcIndex) -> Result<Fragment, String> {
        let work = self.work.bytes_mut();
        work.fill(0);
        work[..4].copy_from_slice(&drc.0.to_be_bytes());
        let mut fragment = Fragment::default();
        for _ in 0..MAX_CONFIGURE_CALLS {
            let status =
                match self.firmware.configure_connector(self.tokens.configure_connector, &mut self.work) {
                    Ok(status) => status.0,
                    Err(e) => return Err(format!("ibm,configure-connector could not be called: {e:?}")),
                };
            match status {
                0..=4 | -2 | 9900..=9905 => {
                    fragment.step(status, self.work.bytes()).map_err(|e| format!("{e}"))?;
                    if fragment.is_complete() {
                        return Ok(fragment);
                    }
                }
                status => return Err(format!("{}", DrcError { call: DrcCall::Configure(drc), status })),
            }
        }
        Err(format!("ibm,configure-connector(drc {drc}) did not complete in {MAX_CONFIGURE_CALLS} calls"))
    }
}

impl DrcCalls for KernelDrcs<'_> {
    fn sense(&mut self, drc: DrcIndex) -> Result<EntitySense, DrcError> {
        let mut rets = [0u32; 1];
        let result = self.firmware.value_call(
            ValueCall::GetSensorState,
            self.tokens.get_sensor_state,
            &[9003, drc.0],
            &mut rets,
        );
        self.status(DrcCall::Sense(drc), result)?;
        Ok(EntitySense::from_value(rets[0]))
    }

    fn set_indicator(
        &mut self,
        indicator: Indicator,
        drc: DrcIndex,
        state: IndicatorState,
    ) -> Result<(), DrcError> {
        let args = [indicator.token(), drc.0, state.value()];
        let result =
            self.firmware.value_call(ValueCall::SetIndicator, self.tokens.set_indicator, &args, &mut []);
        self.status(DrcCall::SetIndicator(indicator, drc, state), result)
    }

    fn configure(&mut self, drc: DrcIndex) -> Result<(), DrcError> {
        let work = self.work.bytes_mut();
        work.fill(0);
        work[..4].copy_from_slice(&drc.0.to_be_bytes());
        let (firmware, token) = (self.firmware, self.tokens.configure_connector);
        let work = &mut self.work;
        configure_to_completion(drc, || match firmware.configure_connector(token, work) {
            Ok(status) => status.0,
            Err(_) => i32::MIN,
        })
        .map(|_| ())
    }
}

/// Each PE's change for one span.
type Changes = Vec<(usize, HotRam)>;

/// The DMA side of memory DLPAR: every PE's DDW.
struct KernelMemoryDma<'a, 'p> {
    phbs: &'a [Phb<'p>],
    multi_tce: MultiTce,
    /// Buffers living in hot-plugged memory now (none between events).
    live: Vec<PhysRange>,
}

impl KernelMemoryDma<'_, '_> {
    fn each(
        &self,
        op: impl Fn(
            &mut drivers::dma::PeState<crate::boundary::hypervisor::PeHypervisor>,
        ) -> Result<HotRam, drivers::iommu::MapError>,
    ) -> Result<Changes, (Changes, String)> {
        let mut done = Vec::new();
        for phb in self.phbs {
            let Some(pe) = &phb.pe else { continue };
            match op(&mut pe.state.lock()) {
                Ok(change) => done.push((phb.index, change)),
                Err(error) => return Err((done, format!("PE {}: {error}", phb.index))),
            }
        }
        Ok(done)
    }
}

impl MemoryDma for KernelMemoryDma<'_, '_> {
    fn map_added(&mut self, range: PhysRange) -> Result<Vec<(usize, HotRam)>, String> {
        let multi = self.multi_tce;
        self.each(|pe| pe.map_hot_added(range, multi)).map_err(|(done, why)| {
            // Nothing stays mapped: the PEs already done are cleared again.
            for (index, _) in done {
                if let Some(pe) = self.phbs.iter().find(|p| p.index == index).and_then(|p| p.pe.as_ref()) {
                    let _ = pe.state.lock().clear_hot_removed(range, multi);
                }
            }
            why
        })
    }

    fn clear_removed(&mut self, range: PhysRange) -> Result<Vec<(usize, HotRam)>, String> {
        let multi = self.multi_tce;
        self.each(|pe| pe.clear_hot_removed(range, multi)).map_err(|(_, why)| why)
    }

    fn in_use(&self, range: PhysRange) -> Option<String> {
        self.live
            .iter()
            .find(|b| b.base.get() < range.end() && range.base.get() < b.end())
            .map(|b| format!("a DMA buffer at {} lives in it", b.base))
    }
}
