//! The NVMe self-test: a controller's first active namespace is treated like a virtio-blk
//! disk (plan in `drivers::selftest::disk`): each MiB of its first 64 MiB read through the
//! spread buffers and checksummed, and on a namespace labelled `PSERIES-DDW-SCRATCH` the first
//! half copied onto the second. Queues, PRP lists and data all reach the controller through
//! its own DMA handle on its PE (direct DDW: bus = physical + base; otherwise TCEs per buffer).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use arch_ppc64::cpu;
use drivers::addr::BusAddr;
use drivers::devices::NVME;
use drivers::dma::{DeviceHandle, DmaTranslation};
use drivers::iommu::DmaDirection;
use drivers::nvme::{Config, Controller, IoOp, NvmeError};
use drivers::pci::Function;
use drivers::selftest::disk::{copy_steps, crc_chunks_of, is_scratch, CRC_CHUNK};

use crate::boundary::hypervisor::PeHypervisor;
use crate::boundary::memory::{device_registers, Endian, PhysBuffer};
use crate::boundary::nvme::{KernelNvmeEnv, NvmeRegisters};
use crate::kv;
use crate::system::Phb;

/// The driver's settings for the self-test: two I/O queue pairs (each 1 MiB transfer is two
/// MDTS-sized commands, one on each), 64 entries each.
pub const CONFIG: Config =
    Config { io_queues: 2, io_depth: 64, admin_depth: 16, command_timeout_us: 10_000_000 };

/// What one controller's test needs.
pub struct NvmeTest<'a> {
    /// Report index (`nvme.<n>`).
    pub n: usize,
    /// Its PHB.
    pub phb: &'a Phb<'a>,
    /// The function.
    pub function: &'a Function,
    /// The spread buffers; those the controller may still reach after a failure are kept.
    pub pool: &'a mut Vec<PhysBuffer>,
    /// Timebase ticks per second.
    pub hz: u64,
}

type Nvme = Controller<NvmeRegisters, KernelNvmeEnv>;

/// The controller of `function`, started, with its DMA handle; reports the mode and identity.
pub fn start(
    key: &dyn Fn(&str) -> String,
    phb: &Phb<'_>,
    function: &Function,
    hz: u64,
    config: Config,
) -> Result<Nvme, String> {
    let bar = function.bar(0).filter(|b| b.kind.is_memory() && b.size >= 0x2000);
    let bar = bar.ok_or("the NVMe controller has no memory BAR 0 of at least 8 KiB")?;
    let mmio = device_registers(phb.info, bar.bus_addr, bar.size, Endian::Little).ok_or_else(|| {
        format!(
            "BAR 0 at bus address {:#x}+{:#x} is outside the PHB's memory windows",
            bar.bus_addr, bar.size
        )
    })?;
    let pe = phb.pe.as_ref().ok_or("the controller's PE was not set up")?;
    let handle: DeviceHandle<PeHypervisor> =
        DeviceHandle::new(&pe.state, NVME.dma_mask(), DmaTranslation::Iommu).map_err(|e| e.to_string())?;
    super::blk::report_mode(key, handle.dma().mode, NVME.dma_mask_bits);
    let nvme = Controller::start(NvmeRegisters(mmio), KernelNvmeEnv::new(handle, hz), config)
        .map_err(|e| e.to_string())?;
    let id = nvme.identity();
    kv!(key("version"), "{}.{}", id.version >> 16, (id.version >> 8) & 0xff);
    kv!(key("serial"), "{}", id.serial);
    kv!(key("model"), "{}", id.model);
    let ns = nvme.namespace();
    kv!(key("namespace"), "{}", ns.id);
    kv!(key("sectors"), "{}", ns.blocks);
    kv!(key("lba_bytes"), "{}", ns.block_bytes);
    kv!(key("max_transfer"), "{}", nvme.max_transfer());
    kv!(key("io_queues"), "{}", nvme.io_queues());
    kv!(key("queue_depth"), "{}", nvme.io_depth());
    for (id, sq, cq) in nvme.queue_addresses() {
        kv!(key(&format!("queue.{id}")), "sq={sq:#x},cq={cq:#x}");
    }
    Ok(nvme)
}

/// Maps `buffer` for the controller, runs `io` with its bus address, and takes it back; a
/// buffer the controller may still reach after a failure is retired (reported, not returned).
pub fn with_buffer(
    nvme: &mut Nvme,
    buffer: PhysBuffer,
    direction: DmaDirection,
    retired: &mut Vec<String>,
    io: impl FnOnce(&mut Nvme, BusAddr) -> Result<(), NvmeError>,
) -> (Option<PhysBuffer>, Result<(), String>) {
    let device = nvme.env().device().clone();
    let mapping = match device.map(buffer, direction) {
        Ok(mapping) => mapping,
        Err(failure) => return (failure.memory, Err(format!("DMA mapping failed: {}", failure.error))),
    };
    nvme.env().maps += 1;
    match io(nvme, mapping.bus_addr()) {
        Ok(()) => match device.unmap(mapping) {
            Ok(buffer) => (Some(buffer), Ok(())),
            Err(failure) => {
                let why = format!("DMA unmapping failed: {failure}");
                drop(failure.mapping);
                (None, Err(why))
            }
        },
        Err(error) => match device.reclaim(mapping) {
            Ok(buffer) => (Some(buffer), Err(error.to_string())),
            Err(kept) => {
                retired.push(kept.to_string());
                (None, Err(error.to_string()))
            }
        },
    }
}

/// Runs the test on one controller and reports `nvme.<n>.*`; `Err` is the status sentence.
pub fn run(test: NvmeTest<'_>) -> Result<(), String> {
    let NvmeTest { n, phb, function, pool, hz } = test;
    let key = |name: &str| format!("nvme.{n}.{name}");
    kv!(key("pe"), "{}", phb.index);
    kv!(key("bdf"), "{}", function.bdf);
    let mut nvme = start(&key, phb, function, hz, CONFIG)?;
    let mut buffers: Vec<PhysBuffer> = Vec::new();
    while let Some(i) = pool.iter().position(|b| b.bytes_len() as u64 >= CRC_CHUNK) {
        buffers.push(pool.swap_remove(i));
    }
    buffers.sort_by_key(|b| b.phys().get());
    let list: Vec<String> = buffers.iter().map(|b| format!("{}", b.phys())).collect();
    kv!(key("buffers"), "{}", list.join(","));
    let mut retired = Vec::new();
    let result = drive(&key, &mut nvme, &mut buffers, &mut retired, hz);
    for why in &retired {
        kv!(key("retired"), "{why}");
    }
    pool.extend(buffers);
    let maps = nvme.env().maps;
    kv!(key("commands"), "{}", nvme.commands());
    kv!(key("maps"), "{maps}");
    // Whatever happened, the controller is shut down before its queue memory is given back.
    let shutdown = nvme.shutdown().map(|_| ()).map_err(|e| format!("shutting the controller down: {e}"));
    result.and(shutdown)
}

/// One transfer through buffer `k` (taken out of `buffers` while the controller owns it and
/// handed back to the caller).
fn one_io(
    nvme: &mut Nvme,
    buffers: &mut Vec<PhysBuffer>,
    retired: &mut Vec<String>,
    k: usize,
    (op, lba, blocks): (IoOp, u64, u64),
) -> Result<PhysBuffer, String> {
    let buffer = buffers.swap_remove(k % buffers.len().max(1));
    let direction = if op == IoOp::Read { DmaDirection::FromDevice } else { DmaDirection::ToDevice };
    let (back, result) =
        with_buffer(nvme, buffer, direction, retired, |nvme, bus| nvme.transfer(op, lba, blocks, bus));
    match (back, result) {
        (Some(buffer), Ok(())) => Ok(buffer),
        (Some(buffer), Err(why)) => {
            buffers.push(buffer);
            Err(why)
        }
        (None, result) => Err(result.err().unwrap_or_else(|| "the buffer was kept out of use".into())),
    }
}

fn drive(
    key: &dyn Fn(&str) -> String,
    nvme: &mut Nvme,
    buffers: &mut Vec<PhysBuffer>,
    retired: &mut Vec<String>,
    hz: u64,
) -> Result<(), String> {
    if buffers.is_empty() {
        return Err("no RAM buffer could be placed".into());
    }
    let ns = nvme.namespace();
    let block = u64::from(ns.block_bytes);
    let label_blocks = 512u64.div_ceil(block);
    let mut first = one_io(nvme, buffers, retired, 0, (IoOp::Read, 0, label_blocks))?;
    let scratch = is_scratch(&first.bytes()[..512]);
    buffers.push(first);
    kv!(key("scratch"), "{}", if scratch { "yes" } else { "no" });
    let (mut bytes, mut ticks) = (0u64, 0u64);
    for (k, lba, blocks) in crc_chunks_of(ns.blocks, block) {
        let len = (blocks * block) as usize;
        let start = cpu::timebase();
        let mut buffer = one_io(nvme, buffers, retired, k as usize, (IoOp::Read, lba, blocks))?;
        ticks += cpu::timebase().wrapping_sub(start);
        bytes += len as u64;
        kv!(key(&format!("crc.{k}")), "{:08x}", crc32fast::hash(&buffer.bytes()[..len]));
        buffers.push(buffer);
    }
    let us = ticks.saturating_mul(1_000_000) / hz.max(1);
    kv!(key("read_bytes"), "{bytes}");
    kv!(key("read_us"), "{us}");
    let tenths = (bytes * 10).checked_div(us).unwrap_or(0);
    kv!(key("read_mbps"), "{}.{}", tenths / 10, tenths % 10);
    if !scratch {
        kv!(key("copy"), "skipped");
        return Ok(());
    }
    let mut copied = 0;
    for (i, (src, dst, count)) in copy_steps(ns.blocks, CRC_CHUNK / block).into_iter().enumerate() {
        let buffer = one_io(nvme, buffers, retired, i, (IoOp::Read, src, count))?;
        buffers.push(buffer);
        let last = buffers.len() - 1;
        let buffer = one_io(nvme, buffers, retired, last, (IoOp::Write, dst, count))?;
        buffers.push(buffer);
        copied += count;
    }
    nvme.flush().map_err(|e| e.to_string())?;
    kv!(key("copy"), "done");
    kv!(key("copied_sectors"), "{copied}");
    Ok(())
}
