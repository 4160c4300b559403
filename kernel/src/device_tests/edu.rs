//! The `edu` round trip (logic in `drivers::selftest::edu`): RAM → device buffer → RAM
//! through the device's own DMA handle, the highest buffer out and the lowest back.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use arch_ppc64::cpu;
use drivers::devices::EDU;
use drivers::dma::{DeviceHandle, DmaMode, DmaTranslation};
use drivers::edu::{Clock, Edu, EduRegs, EDU_BAR0_SIZE};
use drivers::pci::Function;
use drivers::selftest::edu::round_trip;

use crate::boundary::memory::{device_registers, Endian, Mmio, PhysBuffer};
use crate::kv;
use crate::system::Phb;

struct Regs(Mmio);

impl EduRegs for Regs {
    fn read32(&mut self, offset: usize) -> u32 {
        self.0.read32(offset)
    }
    fn write32(&mut self, offset: usize, value: u32) {
        self.0.write32(offset, value);
    }
    fn read64(&mut self, offset: usize) -> u64 {
        self.0.read64(offset)
    }
    fn write64(&mut self, offset: usize, value: u64) {
        self.0.write64(offset, value);
    }
}

struct Timebase(u64);

impl Clock for Timebase {
    fn now_us(&mut self) -> u64 {
        cpu::timebase() / (self.0 / 1_000_000).max(1)
    }
}

/// Two buffers from the pool: the highest out and the lowest back, or the halves of the only
/// one.
fn take_pair(pool: &mut Vec<PhysBuffer>) -> Option<(PhysBuffer, PhysBuffer)> {
    match pool.len() {
        0 => None,
        1 => {
            let only = pool.pop()?;
            let half = only.bytes_len() / 2;
            match only.split(half) {
                Ok((low, high)) => Some((low, high)),
                Err(only) => {
                    pool.push(only);
                    None
                }
            }
        }
        _ => {
            let last = pool.pop()?;
            let first = pool.remove(0);
            Some((last, first))
        }
    }
}

/// Runs the round trip for one `edu`, reporting `edu.<n>.*`; `Err` is the status sentence.
/// Buffers the device can no longer reach go back to `pool`.
pub fn run(
    n: usize,
    phb: &Phb<'_>,
    function: &Function,
    pool: &mut Vec<PhysBuffer>,
    hz: u64,
) -> Result<(), String> {
    let key = |name: &str| format!("edu.{n}.{name}");
    kv!(key("pe"), "{}", phb.index);
    kv!(key("bdf"), "{}", function.bdf);
    let bar = function.bar(0).filter(|b| b.kind.is_memory() && b.size >= EDU_BAR0_SIZE);
    let bar = bar.ok_or("edu has no 1 MiB memory BAR 0")?;
    let mmio = device_registers(phb.info, bar.bus_addr, EDU_BAR0_SIZE, Endian::Big).ok_or_else(|| {
        format!("edu BAR 0 at bus address {:#x} is outside the PHB's memory windows", bar.bus_addr)
    })?;
    let mut edu = Edu::probe(Regs(mmio)).map_err(|e| e.to_string())?;
    let pe = phb.pe.as_ref().ok_or("the edu's PE was not set up")?;
    let device =
        DeviceHandle::new(&pe.state, EDU.dma_mask(), DmaTranslation::Iommu).map_err(|e| e.to_string())?;
    let mode = device.dma().mode;
    kv!(key("dma"), "{}", mode.name());
    if let DmaMode::DefaultIommu { liobn } | DmaMode::DdwIommu { liobn } | DmaMode::Hybrid { liobn, .. } =
        mode
    {
        kv!(key("dma_liobn"), "{liobn}");
    }
    kv!(key("dma_mask_bits"), "{}", EDU.dma_mask_bits);
    let (out, back) = take_pair(pool).ok_or("no RAM buffer could be placed")?;
    let outcome = round_trip(&mut edu, &mut Timebase(hz), &device, out, back, cpu::timebase());
    pool.extend(outcome.returned);
    for retired in &outcome.retired {
        kv!(key("retired"), "{retired}");
    }
    let trip = outcome.result?;
    kv!(key("iova_to_device"), "{}", trip.to_device);
    kv!(key("iova_from_device"), "{}", trip.from_device);
    kv!(key("bytes"), "{}", trip.bytes);
    Ok(())
}
