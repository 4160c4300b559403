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

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use arch_ppc64::{cpu, println};
use drivers::addr::PhysRange;
use drivers::cmdline::ServeMode;
use drivers::devices::{driver_for, DeviceKind};
use drivers::devtree::platform::Platform;
use drivers::dlpar::drc::{
    configure_to_completion, DrcCall, DrcCalls, DrcError, DrcIndex, EntitySense, Indicator, IndicatorState,
};
use drivers::dlpar::event::{parse_event, Action, HotplugEvent, Resource, RtasEvent};
use drivers::dlpar::memory::{self, LmbOutcome, Memory, MemoryDma};
use drivers::dma::HotRam;
use drivers::iommu::MultiTce;

use crate::boundary::memory::{hot_added_buffer, PhysBuffer};
use crate::boundary::mmu::Mode;
use crate::boundary::rtas::{Firmware, RtasBuffer, ValueCall, EVENT_LOG_BYTES, WORK_AREA_BYTES};
use crate::device_tests::blk;
use crate::kv;
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
pub fn serve(platform: &Platform, firmware: Firmware, phbs: &[Phb<'_>], mmu: Mode, hz: u64, mode: ServeMode) {
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

fn wait_ms(hz: u64, ms: u64) {
    let start = cpu::timebase();
    let ticks = hz / 1000 * ms;
    while cpu::timebase().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
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
