//! The `edu` round trip: RAM → device buffer → RAM through the default window, checked byte
//! for byte. `edu` drives 28 address bits (its `dma_mask`), so it gets IOVAs below 2^28 from
//! the default window whatever the DDW is (driver in `drivers::edu`).

use alloc::format;
use alloc::string::{String, ToString};
use arch_ppc64::cpu;
use arch_ppc64::tce::HvTce;
use drivers::addr::PhysAddr;
use drivers::devtree::phb::PhbInfo;
use drivers::dma::{DeviceDma, DmaHandle};
use drivers::edu::{
    Clock, Edu, EduDirection, EduRegs, EduTransfer, DEFAULT_DMA_TIMEOUT_US, EDU_BAR0_SIZE, EDU_DMA_MASK,
    EDU_DMA_MASK_BITS, EDU_USABLE_BUFFER_LEN,
};
use drivers::iommu::DmaDirection;
use drivers::pci::Function;

use crate::dma_context::mmio_cpu_addr;
use crate::kv;
use crate::pe_setup::PES;
use crate::phys::{Endian, Mmio};

/// True for QEMU's `edu` device.
pub fn is_edu(f: &Function) -> bool {
    f.vendor_id == drivers::edu::EDU_VENDOR_ID && f.device_id == drivers::edu::EDU_DEVICE_ID
}

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

/// Runs the round trip for one `edu` through `out` (the data sent) and `back` (where it
/// returns), reporting `edu.<n>.*`; `Err` is the status sentence.
pub fn run(
    n: usize,
    pe: usize,
    phb: &PhbInfo,
    function: &Function,
    out: (PhysAddr, &mut [u8]),
    back: (PhysAddr, &mut [u8]),
    hz: u64,
) -> Result<(), String> {
    let key = |name: &str| format!("edu.{n}.{name}");
    kv!(key("pe"), "{pe}");
    kv!(key("bdf"), "{}", function.bdf);
    let bar = function.bar(0).filter(|b| b.kind.is_memory() && b.size >= EDU_BAR0_SIZE);
    let bar = bar.ok_or("edu has no 1 MiB memory BAR 0")?;
    let cpu_addr = mmio_cpu_addr(&phb.ranges, bar.bus_addr, EDU_BAR0_SIZE).ok_or_else(|| {
        format!("edu BAR 0 at bus address {:#x} is outside the PHB's memory windows", bar.bus_addr)
    })?;
    // SAFETY: BAR 0 of this edu, translated through its PHB's ranges; only this code uses it.
    let regs = Regs(unsafe { Mmio::new(cpu_addr, EDU_BAR0_SIZE, Endian::Big) });
    let mut edu = Edu::probe(regs).map_err(|e| e.to_string())?;
    let mode = PES.lock().get(pe).ok_or("the edu's PE was not set up")?.dma.choose_mode(EDU_DMA_MASK, true);
    let device = DeviceDma { mode: mode.map_err(|e| e.to_string())?, mask: EDU_DMA_MASK };
    kv!(key("dma"), "{}", device.mode.name());
    if let drivers::dma::DmaMode::DefaultIommu { liobn } | drivers::dma::DmaMode::DdwIommu { liobn } =
        device.mode
    {
        kv!(key("dma_liobn"), "{liobn}");
    }
    kv!(key("dma_mask_bits"), "{EDU_DMA_MASK_BITS}");
    let len = EDU_USABLE_BUFFER_LEN as usize;
    let (out_phys, out_bytes) = out;
    let (back_phys, back_bytes) = back;
    let mut seed = cpu::timebase() | 1;
    for byte in &mut out_bytes[..len] {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *byte = seed as u8;
    }
    back_bytes[..len].fill(0);
    let map = |phys, direction| {
        let mut pes = PES.lock();
        let pe = pes.get_mut(pe).ok_or("the edu's PE was not set up".to_string())?;
        device.map(&mut pe.dma, &mut HvTce, phys, len as u64, direction).map_err(|e| e.to_string())
    };
    let unmap = |handle: DmaHandle| {
        let mut pes = PES.lock();
        if let Some(pe) = pes.get_mut(pe) {
            device.unmap(&mut pe.dma, &mut HvTce, handle).map_err(|e| e.to_string())
        } else {
            Ok(())
        }
    };
    let to_device = map(out_phys, DmaDirection::ToDevice)?;
    let from_device = match map(back_phys, DmaDirection::FromDevice) {
        Ok(handle) => handle,
        Err(e) => {
            unmap(to_device)?;
            return Err(e);
        }
    };
    kv!(key("iova_to_device"), "{}", to_device.bus_addr());
    kv!(key("iova_from_device"), "{}", from_device.bus_addr());
    kv!(key("bytes"), "{len}");
    let mut clock = Timebase(hz);
    let step = |direction, ram| EduTransfer { direction, ram, device_offset: 0, len: len as u32 };
    let result = edu
        .transfer(&mut clock, step(EduDirection::ToDevice, to_device.bus_addr()), DEFAULT_DMA_TIMEOUT_US)
        .and_then(|()| {
            let back = step(EduDirection::FromDevice, from_device.bus_addr());
            edu.transfer(&mut clock, back, DEFAULT_DMA_TIMEOUT_US)
        });
    if let Err(e) = result {
        // The transfer may still be running: leave the buffers mapped (their TCEs and IOVAs
        // stay allocated) rather than risk a DMA into memory that is reused.
        let _still_mapped = (to_device, from_device);
        return Err(e.to_string());
    }
    unmap(to_device)?;
    unmap(from_device)?;
    match out_bytes[..len].iter().zip(&back_bytes[..len]).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(at) => Err(format!(
            "edu round trip corrupted byte {at}: sent {:#04x}, got back {:#04x}",
            out_bytes[at], back_bytes[at]
        )),
    }
}
