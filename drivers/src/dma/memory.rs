//! Memory a device may be given: the one `unsafe` contract of this crate.
//!
//! A device that can reach a page can read or write it behind the compiler's back, so the
//! IOMMU driver only ever maps memory whose owner has vouched for it by implementing
//! [`DmaMemory`]. Mapping moves the value into a [`DmaMapping`](super::DmaMapping); it comes
//! back out only when the device's access has ended, and a mapping dropped without being
//! unmapped leaks its memory rather than let it be reused while a device may reach it (the
//! shape of `virtio-drivers`' `Hal::share` contract and Asterinas OSTD's `DmaStream`).
#![allow(unsafe_code)]

use crate::addr::PhysAddr;

/// Guest-physical memory that can be handed to a device.
///
/// # Safety
/// Implementations promise, for as long as the value lives (until it is dropped or leaked):
/// 1. `[phys(), phys() + len())` is memory the value owns exclusively: nothing else reads or
///    writes it except through this value, and no allocator hands it out;
/// 2. `phys()` and `len()` always return the same values, and `phys() + len()` does not
///    overflow.
///
/// Dropping the value may give the memory back for other use; the IOMMU driver never drops a
/// value while a device may still reach it.
pub unsafe trait DmaMemory {
    /// The guest-physical address of the first byte.
    fn phys(&self) -> PhysAddr;

    /// The length in bytes.
    fn len(&self) -> u64;

    /// Whether the memory is empty (empty memory is never mapped).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
