//! The I/O benchmark (`bench=io`, run by `./run.sh bench io`): instead of the self-test, each
//! virtio-blk disk and NVMe namespace gets the phases of `drivers::selftest::bench` — timed
//! sequential reads, and writes on a scratch disk — through one 64 MiB buffer region split
//! into one slice per request in flight, each slice mapped for its request and unmapped after
//! it (free in direct mode, TCEs per request in a TCE window). Around each phase the kernel
//! prints `bench.DEV.begin=LABEL` and `bench.DEV.LABEL=bytes=…,requests=…,us=…` and then
//! idles 30 ms, so that the host can attribute QEMU's trace to phases by time.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use arch_ppc64::{cpu, println};
use drivers::addr::BusAddr;
use drivers::devices::{driver_for_function, DeviceKind};
use drivers::devtree::platform::Platform;
use drivers::dma::{DeviceHandle, DmaMapping};
use drivers::iommu::DmaDirection;
use drivers::nvme::{stream, Config, IoOp, RequestBuffers};
use drivers::pci::Function;
use drivers::selftest::bench::{phases, Phase, BLK_DEEPEST, BUFFER_BYTES, NVME_DEEPEST};
use drivers::selftest::disk::is_scratch;

use crate::boundary::hypervisor::PeHypervisor;
use crate::boundary::memory::{place_buffers, PhysBuffer, Reserved};
use crate::boundary::virtio_hal::{blk_request, blk_stream, BlkOp};
use crate::kv;
use crate::system::Phb;

/// NVMe: two queue pairs of 128 entries, so 64 requests of two commands each fit.
const NVME_CONFIG: Config =
    Config { io_queues: 2, io_depth: 128, admin_depth: 16, command_timeout_us: 10_000_000 };
/// Idle time after each phase, in milliseconds.
const GAP_MS: u64 = 30;

/// Runs the benchmark on every disk-like device; returns the number of failures.
pub fn run(platform: &Platform, phbs: &[Phb<'_>], reserved: &Reserved, hz: u64) -> usize {
    println!("== I/O benchmark (bench=io)");
    let Some((_, region)) = place_buffers(&platform.memory, reserved, BUFFER_BYTES).into_iter().next() else {
        kv!("bench.status", "no {} MiB of RAM for the buffers", BUFFER_BYTES >> 20);
        return 1;
    };
    kv!("bench.buffer", "{}+{:#x}", region.phys(), region.bytes_len());
    let mut region = Some(region);
    let (mut nvmes, mut disks, mut failures) = (0, 0, 0);
    for phb in phbs {
        for function in &phb.functions {
            let Some(kind) = driver_for_function(function).map(|d| d.kind) else { continue };
            let dev = match kind {
                DeviceKind::Nvme => format!("nvme.{}", post_inc(&mut nvmes)),
                DeviceKind::VirtioBlk => format!("blk.{}", post_inc(&mut disks)),
                DeviceKind::Edu => continue,
            };
            let target = Target { dev: dev.clone(), phb, function, hz };
            let result = match kind {
                DeviceKind::Nvme => nvme(&target, &mut region),
                _ => blk(&target, &mut region),
            };
            if let Err(why) = &result {
                println!("  bench.{dev}: {why}");
                failures += 1;
            }
            kv!(format!("bench.{dev}.status"), "{}", result.err().unwrap_or_else(|| "ok".into()));
        }
    }
    kv!("bench.status", "{}", if failures == 0 { "ok" } else { "fail" });
    failures
}

/// `*n`, then one more.
fn post_inc(n: &mut usize) -> usize {
    *n += 1;
    *n - 1
}

fn idle(hz: u64) {
    let start = cpu::timebase();
    while cpu::timebase().wrapping_sub(start) < hz / 1000 * GAP_MS {
        core::hint::spin_loop();
    }
}

/// Runs `phase` on `dev` through `io`, printing the begin and result lines.
fn timed(dev: &str, phase: &Phase, hz: u64, io: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let label = phase.label();
    kv!(format!("bench.{dev}.begin"), "{label}");
    let start = cpu::timebase();
    let result = io();
    let us = cpu::timebase().wrapping_sub(start).saturating_mul(1_000_000) / hz.max(1);
    result.map_err(|why| format!("{label}: {why}"))?;
    kv!(format!("bench.{dev}.{label}"), "bytes={},requests={},us={us}", phase.bytes, phase.requests());
    idle(hz);
    Ok(())
}

/// `region` cut into `count` slices of `size` bytes and the rest.
fn slice(region: PhysBuffer, size: u64, count: u64) -> (Vec<PhysBuffer>, Option<PhysBuffer>) {
    let mut slices = Vec::new();
    let mut rest = Some(region);
    for _ in 0..count {
        let Some(r) = rest.take() else { break };
        match r.split(size as usize) {
            Ok((one, more)) => {
                slices.push(one);
                rest = Some(more);
            }
            Err(whole) => {
                slices.push(whole);
                break;
            }
        }
    }
    (slices, rest)
}

/// The slices joined back into one region (they are adjacent, in order).
fn join(slices: Vec<PhysBuffer>, rest: Option<PhysBuffer>) -> Option<PhysBuffer> {
    let mut all = slices.into_iter().chain(rest);
    let first = all.next()?;
    all.try_fold(first, |a, b| a.join(b).ok())
}

/// NVMe request buffers: a slice per slot, mapped through the controller's handle per request.
struct Slots {
    device: DeviceHandle<PeHypervisor>,
    direction: DmaDirection,
    idle: Vec<Option<PhysBuffer>>,
    mapped: Vec<Option<DmaMapping<PhysBuffer>>>,
}

impl RequestBuffers for Slots {
    fn map(&mut self, slot: usize) -> Result<BusAddr, String> {
        let buffer = self.idle.get_mut(slot).and_then(Option::take).ok_or("no buffer in that slot")?;
        match self.device.map(buffer, self.direction) {
            Ok(mapping) => {
                let bus = mapping.bus_addr();
                self.mapped[slot] = Some(mapping);
                Ok(bus)
            }
            Err(failure) => {
                self.idle[slot] = failure.memory;
                Err(format!("DMA mapping failed: {}", failure.error))
            }
        }
    }

    fn unmap(&mut self, slot: usize) -> Result<(), String> {
        let mapping = self.mapped.get_mut(slot).and_then(Option::take).ok_or("slot not mapped")?;
        match self.device.unmap(mapping) {
            Ok(buffer) => {
                self.idle[slot] = Some(buffer);
                Ok(())
            }
            Err(failure) => {
                let why = failure.to_string();
                drop(failure.mapping);
                Err(why)
            }
        }
    }
}

/// One device under test.
struct Target<'a> {
    /// `nvme.0`, `blk.1`.
    dev: String,
    phb: &'a Phb<'a>,
    function: &'a Function,
    hz: u64,
}

impl Target<'_> {
    fn key(&self, name: &str) -> String {
        format!("bench.{}.{name}", self.dev)
    }
}

fn nvme(t: &Target<'_>, region: &mut Option<PhysBuffer>) -> Result<(), String> {
    let (dev, hz) = (&t.dev, t.hz);
    let key = |name: &str| t.key(name);
    let mut nvme = super::nvme::start(&key, t.phb, t.function, hz, NVME_CONFIG)?;
    let result = (|| {
        let ns = nvme.namespace();
        let block = u64::from(ns.block_bytes);
        let buffer = region.take().ok_or("the buffer region was lost")?;
        let mut retired = Vec::new();
        let (back, read) =
            super::nvme::with_buffer(&mut nvme, buffer, DmaDirection::FromDevice, &mut retired, |n, bus| {
                n.transfer(IoOp::Read, 0, 512u64.div_ceil(block), bus)
            });
        *region = back;
        read?;
        let scratch = region.as_mut().is_some_and(|r| is_scratch(&r.bytes()[..512]));
        kv!(key("scratch"), "{}", if scratch { "yes" } else { "no" });
        let device = nvme.env().device().clone();
        for phase in phases(ns.bytes(), scratch, NVME_DEEPEST) {
            let whole = region.take().ok_or("the buffer region was lost")?;
            let (slices, rest) = slice(whole, phase.size, phase.depth);
            let direction = if phase.write { DmaDirection::ToDevice } else { DmaDirection::FromDevice };
            let mut slots = Slots {
                device: device.clone(),
                direction,
                mapped: slices.iter().map(|_| None).collect(),
                idle: slices.into_iter().map(Some).collect(),
            };
            let op = if phase.write { IoOp::Write } else { IoOp::Read };
            let request = (phase.offset / block, phase.size / block, phase.requests());
            let depth = slots.idle.len();
            let outcome = timed(dev, &phase, hz, || {
                stream(&mut nvme, op, request, depth, &mut slots, 10_000_000).map_err(|e| e.to_string())
            });
            if slots.mapped.iter().any(Option::is_some) {
                // The controller may still reach these: they stay out of use.
                return outcome.and(Err("buffers were still mapped after the phase".into()));
            }
            let idle: Option<Vec<PhysBuffer>> = slots.idle.into_iter().collect();
            *region = join(idle.ok_or("a buffer went missing")?, rest);
            outcome?;
        }
        Ok::<(), String>(())
    })();
    kv!(key("commands"), "{}", nvme.commands());
    let shutdown = nvme.shutdown().map(|_| ()).map_err(|e| format!("shutting the controller down: {e}"));
    result.and(shutdown)
}

fn blk(t: &Target<'_>, region: &mut Option<PhysBuffer>) -> Result<(), String> {
    let (dev, hz) = (&t.dev, t.hz);
    let key = |name: &str| t.key(name);
    let (mut blk, guard) = super::blk::open(&key, t.phb, t.function)?;
    let result = (|| {
        let buffer = region.as_mut().ok_or("the buffer region was lost")?;
        let bytes = buffer.bytes();
        let timeout = hz * 10;
        blk_request(&mut blk, BlkOp::Read, 0, &mut bytes[..512], timeout, &guard)?;
        let scratch = is_scratch(&bytes[..512]);
        kv!(key("scratch"), "{}", if scratch { "yes" } else { "no" });
        for phase in phases(blk.capacity() * 512, scratch, BLK_DEEPEST) {
            let op = if phase.write { BlkOp::Write } else { BlkOp::Read };
            let request = (phase.offset / 512, phase.size / 512, phase.requests());
            timed(dev, &phase, hz, || {
                blk_stream(&mut blk, op, request, phase.depth as usize, bytes, timeout, &guard)
            })?;
        }
        if scratch {
            blk.flush().map_err(|e| format!("virtio-blk flush: {e}"))?;
        }
        Ok::<(), String>(())
    })();
    // The device goes (its queues given back through the HAL) before the HAL's binding.
    drop(blk);
    super::blk::report_wakes(&key, &guard);
    let dma = guard.error();
    drop(guard);
    match dma {
        Some(error) => Err(format!("DMA mapping failed: {error}")),
        None => result,
    }
}
