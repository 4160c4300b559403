//! Raw access to physical memory the kernel does not own through Rust allocations: the DMA
//! self-test's buffers spread over RAM, and device MMIO.
//!
//! The kernel runs with translation off (MSR[IR,DR] = 0), so an effective address is the
//! guest-physical address (QEMU: the top four address bits are ignored in real mode).

use alloc::vec::Vec;
use drivers::addr::{PhysAddr, PhysRange};

/// Memory the kernel or firmware uses and the self-test must not touch.
pub struct Reserved(pub Vec<PhysRange>);

impl Reserved {
    /// Adds `[base, base + size)`.
    pub fn add(&mut self, base: u64, size: u64) {
        if size > 0 {
            self.0.push(PhysRange { base: PhysAddr(base), size });
        }
    }
}

/// A RAM buffer outside every reservation.
pub struct PhysBuffer {
    base: PhysAddr,
    len: usize,
}

impl PhysBuffer {
    /// Claims `[base, base + len)`.
    ///
    /// # Safety
    /// The range must be RAM that nothing else uses for as long as the buffer lives (the
    /// placement excludes the kernel image, heap, RTAS, the FDT and firmware reservations),
    /// and no two live buffers may overlap.
    pub unsafe fn new(base: PhysAddr, len: usize) -> Self {
        Self { base, len }
    }

    /// Physical address of the first byte.
    pub fn phys(&self) -> PhysAddr {
        self.base
    }

    /// The buffer's bytes.
    pub fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the constructor's contract makes the range exclusively ours; real mode
        // makes the physical address directly usable as a pointer.
        unsafe { core::slice::from_raw_parts_mut(self.base.get() as *mut u8, self.len) }
    }
}

/// Byte order of a device's registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    /// Little-endian (PCI's, virtio's).
    #[allow(dead_code)] // virtio's registers go through virtio-drivers' own accessors
    Little,
    /// Big-endian (QEMU `DEVICE_NATIVE_ENDIAN` devices such as `edu` on ppc64).
    Big,
}

/// 32- and 64-bit MMIO registers of one device region. Writes are preceded by `sync` (stores
/// to RAM the device may DMA from are visible first) and reads followed by one, as Linux's
/// `out_be64`/`in_be64` order them.
pub struct Mmio {
    base: usize,
    len: usize,
    endian: Endian,
}

impl Mmio {
    /// Registers at CPU address `base`, `len` bytes long.
    ///
    /// # Safety
    /// `[base, base + len)` must be a device's MMIO region (a BAR translated through the PHB's
    /// `ranges`) with nothing else accessing it.
    pub unsafe fn new(base: u64, len: u64, endian: Endian) -> Self {
        Self { base: base as usize, len: len as usize, endian }
    }

    fn at<T>(&self, offset: usize) -> *mut T {
        assert!(
            offset + core::mem::size_of::<T>() <= self.len
                && offset.is_multiple_of(core::mem::size_of::<T>())
        );
        (self.base + offset) as *mut T
    }

    fn read<T: Register>(&self, offset: usize) -> T {
        // SAFETY: in the region (checked by `at`), aligned, device memory per the constructor.
        let raw = unsafe { self.at::<T>(offset).read_volatile() };
        arch_ppc64::cpu::sync();
        raw.swap_for(self.endian)
    }

    fn write<T: Register>(&self, offset: usize, value: T) {
        arch_ppc64::cpu::sync();
        // SAFETY: as in `read`.
        unsafe { self.at::<T>(offset).write_volatile(value.swap_for(self.endian)) }
    }

    /// Reads a 32-bit register.
    pub fn read32(&self, offset: usize) -> u32 {
        self.read(offset)
    }

    /// Writes a 32-bit register.
    pub fn write32(&self, offset: usize, value: u32) {
        self.write(offset, value);
    }

    /// Reads a 64-bit register.
    pub fn read64(&self, offset: usize) -> u64 {
        self.read(offset)
    }

    /// Writes a 64-bit register.
    pub fn write64(&self, offset: usize, value: u64) {
        self.write(offset, value);
    }
}

/// A register width; byte-swapping is its own inverse, so one conversion serves both ways.
trait Register: Copy {
    fn swap_for(self, endian: Endian) -> Self;
}

macro_rules! register {
    ($($ty:ty),*) => {$(
        impl Register for $ty {
            fn swap_for(self, endian: Endian) -> Self {
                match endian {
                    Endian::Big => <$ty>::from_be(self),
                    Endian::Little => <$ty>::from_le(self),
                }
            }
        }
    )*};
}

register!(u32, u64);
