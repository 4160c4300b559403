//! Memory the kernel reaches outside Rust's ownership: the heap's backing region, RAM the
//! self-test borrows, device registers, page-table memory; and the
//! [`drivers::dma::DmaMemory`] implementations that hand memory to devices.
//!
//! Effective addresses are guest-physical addresses: the kernel runs in real mode or, once
//! translation is on, under an identity map of RAM and every PHB window (`mmu_setup`).

use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use core::ptr::NonNull;
use drivers::addr::PhysAddr;
use drivers::dma::DmaMemory;
use drivers::mmu::TableMemory;
use linked_list_allocator::LockedHeap;

/// Heap size: room for the flattened tree, PCI and report data, and DMA bookkeeping.
pub const HEAP_SIZE: u64 = 32 << 20;

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

/// Where the heap lives, for the report.
static HEAP_REGION: spin::Once<(u64, u64)> = spin::Once::new();

/// Hands `[base, base + size)` to the allocator.
///
/// # Safety
/// The region must be RAM owned by the kernel from now on and used by nothing else, and this
/// must be called once.
pub unsafe fn init_heap(base: u64, size: u64) {
    HEAP_REGION.call_once(|| (base, size));
    // SAFETY: the caller guarantees exclusive ownership of the region.
    unsafe { ALLOCATOR.lock().init(base as *mut u8, size as usize) };
}

/// `(base, size)` of the heap, if initialised.
pub fn heap_region() -> Option<(u64, u64)> {
    HEAP_REGION.get().copied()
}

/// A RAM region outside every reservation, owned by the self-test.
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

    /// Its length in bytes.
    pub fn bytes_len(&self) -> usize {
        self.len
    }

    /// The buffer's bytes.
    pub fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the constructor's contract makes the range exclusively ours, and the
        // identity map makes the physical address usable as a pointer.
        unsafe { core::slice::from_raw_parts_mut(self.base.get() as *mut u8, self.len) }
    }

    /// Splits the buffer into `[0, at)` and `[at, len)` (`None` if `at` is not inside it).
    pub fn split(self, at: usize) -> Result<(PhysBuffer, PhysBuffer), PhysBuffer> {
        if at == 0 || at >= self.len {
            return Err(self);
        }
        let second = PhysAddr(self.base.get() + at as u64);
        // SAFETY: the two halves are disjoint parts of this buffer's range, which it owned.
        Ok(unsafe { (PhysBuffer::new(self.base, at), PhysBuffer::new(second, self.len - at)) })
    }
}

impl PhysBuffer {
    /// Joins `self` and the buffer right after it back into one (both handed back if they
    /// are not adjacent).
    pub fn join(self, next: PhysBuffer) -> Result<PhysBuffer, (PhysBuffer, PhysBuffer)> {
        if self.base.get() + self.len as u64 != next.base.get() {
            return Err((self, next));
        }
        let (base, len) = (self.base, self.len + next.len);
        // SAFETY: the two adjacent ranges were each owned exclusively by these buffers, which
        // are consumed here, so their union is owned by the new one alone.
        Ok(unsafe { PhysBuffer::new(base, len) })
    }
}

// SAFETY: a `PhysBuffer` owns its range exclusively (constructor contract) and its address
// and length never change.
unsafe impl DmaMemory for PhysBuffer {
    fn phys(&self) -> PhysAddr {
        self.base
    }

    fn len(&self) -> u64 {
        self.len as u64
    }
}

impl AsMut<[u8]> for PhysBuffer {
    fn as_mut(&mut self) -> &mut [u8] {
        self.bytes()
    }
}

/// Zeroed, page-aligned heap pages for a device's own structures (virtqueues); freed when
/// dropped.
pub struct HeapPages {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the allocation is owned by this value alone; nothing else refers to it.
unsafe impl Send for HeapPages {}

impl HeapPages {
    /// `bytes` zeroed bytes aligned to `align` (a power of two), or `None`.
    pub fn zeroed(bytes: usize, align: usize) -> Option<Self> {
        let layout = Layout::from_size_align(bytes, align).ok().filter(|l| l.size() > 0)?;
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) })?;
        Some(Self { ptr, layout })
    }

    /// The first byte.
    pub fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }
}

impl Drop for HeapPages {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout and not freed since.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

// SAFETY: the pages are owned by this value (from the allocator, freed only on drop), and
// their address and length never change.
unsafe impl DmaMemory for HeapPages {
    fn phys(&self) -> PhysAddr {
        PhysAddr(self.ptr.as_ptr() as u64)
    }

    fn len(&self) -> u64 {
        self.layout.size() as u64
    }
}

/// A buffer `virtio-drivers` shares with the device: the driver owns it, and `Hal::share`'s
/// contract keeps it valid and untouched until `Hal::unshare`.
pub struct SharedRegion {
    base: PhysAddr,
    len: u64,
}

impl SharedRegion {
    /// The region `buffer` covers.
    ///
    /// # Safety
    /// `buffer` must stay valid, and be accessed only through the device, until the region
    /// (or the mapping holding it) is dropped: `virtio-drivers`' `Hal::share` contract, up to
    /// the matching `Hal::unshare`.
    pub unsafe fn new(buffer: NonNull<[u8]>) -> Self {
        Self { base: PhysAddr(buffer.as_ptr().cast::<u8>() as u64), len: buffer.len() as u64 }
    }
}

// SAFETY: the constructor's contract gives the region to the device until it is dropped;
// its address and length never change.
unsafe impl DmaMemory for SharedRegion {
    fn phys(&self) -> PhysAddr {
        self.base
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// Byte order of a device's registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    /// Little-endian (PCI's, virtio's, NVMe's).
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
    /// `ranges`, mapped cache-inhibited) with nothing else accessing it.
    pub unsafe fn new(base: PhysAddr, len: u64, endian: Endian) -> Self {
        Self { base: base.get() as usize, len: len as usize, endian }
    }

    fn at<T>(&self, offset: usize) -> Option<*mut T> {
        let size = core::mem::size_of::<T>();
        let inside =
            offset.checked_add(size).is_some_and(|end| end <= self.len) && offset.is_multiple_of(size);
        inside.then_some((self.base + offset) as *mut T)
    }

    fn read<T: Register>(&self, offset: usize) -> T {
        let Some(at) = self.at::<T>(offset) else { return T::ALL_ONES };
        // SAFETY: inside the region (checked by `at`), aligned, device memory per the
        // constructor.
        let raw = unsafe { at.read_volatile() };
        arch_ppc64::cpu::sync();
        raw.swap_for(self.endian)
    }

    fn write<T: Register>(&self, offset: usize, value: T) {
        let Some(at) = self.at::<T>(offset) else { return };
        arch_ppc64::cpu::sync();
        // SAFETY: as in `read`.
        unsafe { at.write_volatile(value.swap_for(self.endian)) }
    }

    /// Reads a 32-bit register (all ones outside the region, as an absent device reads).
    pub fn read32(&self, offset: usize) -> u32 {
        self.read(offset)
    }

    /// Writes a 32-bit register (ignored outside the region).
    pub fn write32(&self, offset: usize, value: u32) {
        self.write(offset, value);
    }

    /// Reads a 64-bit register (all ones outside the region).
    pub fn read64(&self, offset: usize) -> u64 {
        self.read(offset)
    }

    /// Writes a 64-bit register (ignored outside the region).
    pub fn write64(&self, offset: usize, value: u64) {
        self.write(offset, value);
    }
}

/// A register width; byte-swapping is its own inverse, so one conversion serves both ways.
trait Register: Copy {
    const ALL_ONES: Self;
    fn swap_for(self, endian: Endian) -> Self;
}

macro_rules! register {
    ($($ty:ty),*) => {$(
        impl Register for $ty {
            const ALL_ONES: Self = <$ty>::MAX;
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

/// Page-table memory on the heap (never freed: the tables live as long as the kernel).
#[derive(Debug, Default)]
pub struct HeapTables {
    /// Bytes handed out.
    pub bytes: u64,
    /// Tables handed out, as (address, entries), so that `write`/`read` stay inside them.
    tables: alloc::vec::Vec<(u64, usize)>,
}

impl HeapTables {
    fn owns(&self, table: u64, index: usize) -> bool {
        self.tables.iter().any(|&(at, entries)| at == table && index < entries)
    }
}

impl TableMemory for HeapTables {
    fn alloc_table(&mut self, entries: usize) -> Option<u64> {
        let size = entries.checked_mul(8)?;
        let pages = HeapPages::zeroed(size, size)?;
        let table = pages.ptr().as_ptr() as u64;
        // Leaked on purpose: a registered table must never be freed.
        core::mem::forget(pages);
        self.bytes += size as u64;
        self.tables.push((table, entries));
        Some(table)
    }

    fn write(&mut self, table: u64, index: usize, value: u64) {
        if !self.owns(table, index) {
            return;
        }
        // SAFETY: `table` came from `alloc_table` with more than `index` entries (checked
        // above); entries are stored big-endian as the MMU reads them.
        unsafe { (table as *mut u64).add(index).write_volatile(value.to_be()) };
    }

    fn read(&self, table: u64, index: usize) -> u64 {
        if !self.owns(table, index) {
            return 0;
        }
        // SAFETY: as for `write`.
        u64::from_be(unsafe { (table as *const u64).add(index).read_volatile() })
    }
}

/// Memory the kernel or firmware uses and the self-test must not touch.
#[derive(Default)]
pub struct Reserved(pub alloc::vec::Vec<drivers::addr::PhysRange>);

impl Reserved {
    /// Adds `[base, base + size)`.
    pub fn add(&mut self, base: u64, size: u64) {
        if size > 0 {
            self.0.push(drivers::addr::PhysRange { base: PhysAddr(base), size });
        }
    }
}

/// A buffer of `len` bytes at the start of `range`, memory the serving mode has just taken in
/// by memory DLPAR (`None` if the range is shorter).
///
/// Sound because such memory belongs to the kernel from its acquisition until it is given
/// back, nothing else ever allocates from it (the heap and the self-test's buffers lie in boot
/// RAM), the radix identity map covers the hot-plug room from boot (`boundary::mmu`), and the
/// serving mode holds at most one such buffer at a time and drops it before the memory can go.
pub fn hot_added_buffer(range: drivers::addr::PhysRange, len: u64) -> Option<PhysBuffer> {
    if range.size < len {
        return None;
    }
    // SAFETY: see above: the range is RAM the kernel owns and uses for nothing else.
    Some(unsafe { PhysBuffer::new(range.base, len as usize) })
}

/// The self-test's buffers of `len` bytes, placed by `drivers::selftest::placement` in `ram`
/// clear of `reserved`.
pub fn place_buffers(
    ram: &[drivers::addr::PhysRange],
    reserved: &Reserved,
    len: u64,
) -> alloc::vec::Vec<(drivers::selftest::placement::Spot, PhysBuffer)> {
    drivers::selftest::placement::place_buffers(ram, &reserved.0, len)
        .into_iter()
        // SAFETY: the placement puts each buffer inside RAM, outside every reservation (the
        // image, heap, vectors, RTAS, the FDT, firmware's reservations) and clear of the others.
        .map(|(spot, at)| (spot, unsafe { PhysBuffer::new(at, len as usize) }))
        .collect()
}

/// The registers of a device behind `phb`: `len` bytes of its memory space at bus address
/// `bus` (a BAR), through the PHB's ranges; `None` if no window holds them.
pub fn device_registers(
    phb: &drivers::devtree::phb::PhbInfo,
    bus: u64,
    len: u64,
    endian: Endian,
) -> Option<Mmio> {
    let cpu = phb.bus_to_cpu(drivers::devtree::phb::PciSpace::Mem64, bus, len)?;
    // SAFETY: the BAR's range, translated through its PHB's ranges, is that device's MMIO
    // (mapped cache-inhibited and guarded by `mmu`); the device test that asks is the only
    // user of the device while it runs.
    Some(unsafe { Mmio::new(cpu, len, endian) })
}
