//! The kernel heap: one contiguous region handed to `linked_list_allocator`.
//!
//! Under Open Firmware the region is claimed through the client interface first (firmware is
//! still alive and owns parts of RAM); on the FDT-direct path it is placed after the kernel
//! image, clear of the FDT and its reserved ranges (see `boot_fdt`).

use linked_list_allocator::LockedHeap;

/// Heap size: room for the flattened tree, PCI and report data, and DMA bookkeeping.
pub const HEAP_SIZE: u64 = 32 << 20;

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

/// Where the heap lives, for the report.
static REGION: spin::Once<(u64, u64)> = spin::Once::new();

/// Hands `[base, base + size)` to the allocator.
///
/// # Safety
/// The region must be RAM owned by the kernel from now on, unused by anything else, and this
/// must be called once.
pub unsafe fn init(base: u64, size: u64) {
    REGION.call_once(|| (base, size));
    // SAFETY: the caller guarantees exclusive ownership of the region.
    unsafe { ALLOCATOR.lock().init(base as *mut u8, size as usize) };
}

/// `(base, size)` of the heap, if initialised.
pub fn region() -> Option<(u64, u64)> {
    REGION.get().copied()
}
