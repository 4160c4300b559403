//! The `virtio-drivers` HAL: DMA memory from the heap, shared through the active device's
//! DMA mode (bypass, direct DDW, or TCEs in a window), MMIO through the PHB's `ranges`.
//!
//! Translation is off, so a heap pointer is its physical address (see `phys`).

use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use core::ptr::NonNull;
use drivers::addr::PhysAddr;
use drivers::iommu::DmaDirection;
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE};

use crate::dma_context::{self, ACTIVE};

/// The kernel's HAL.
pub struct KernelHal;

fn direction(direction: BufferDirection) -> DmaDirection {
    match direction {
        BufferDirection::DriverToDevice => DmaDirection::ToDevice,
        BufferDirection::DeviceToDriver => DmaDirection::FromDevice,
        BufferDirection::Both => DmaDirection::Bidirectional,
    }
}

fn layout(pages: usize) -> Option<Layout> {
    Layout::from_size_align(pages.checked_mul(PAGE_SIZE)?, PAGE_SIZE).ok()
}

// SAFETY: dma_alloc returns zeroed, page-aligned heap memory owned by the caller until
// dma_dealloc; mmio_phys_to_virt returns the BAR's CPU address, which nothing else maps.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, dir: BufferDirection) -> (u64, NonNull<u8>) {
        let Some(layout) = layout(pages).filter(|l| l.size() > 0) else { return (0, NonNull::dangling()) };
        // SAFETY: the layout has a non-zero size.
        let Some(ptr) = NonNull::new(unsafe { alloc_zeroed(layout) }) else {
            return (0, NonNull::dangling());
        };
        match dma_context::map(PhysAddr(ptr.as_ptr() as u64), layout.size() as u64, direction(dir)) {
            Some(bus) => (bus, ptr),
            None => {
                // SAFETY: allocated just above with this layout.
                unsafe { dealloc(ptr.as_ptr(), layout) };
                (0, NonNull::dangling())
            }
        }
    }

    unsafe fn dma_dealloc(paddr: u64, vaddr: NonNull<u8>, pages: usize) -> i32 {
        dma_context::unmap(paddr);
        let Some(layout) = layout(pages) else { return -1 };
        // SAFETY: the caller passes back what dma_alloc returned, with the same page count.
        unsafe { dealloc(vaddr.as_ptr(), layout) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: u64, size: usize) -> NonNull<u8> {
        let ranges = ACTIVE.lock().as_ref().map(|a| a.ranges.clone()).unwrap_or_default();
        // The caller checked every BAR against the ranges before creating the transport.
        let cpu = dma_context::mmio_cpu_addr(&ranges, paddr, size as u64);
        match cpu.and_then(|addr| NonNull::new(addr as *mut u8)) {
            Some(ptr) => ptr,
            None => panic!("virtio BAR region {paddr:#x}+{size:#x} is outside the PHB's memory windows"),
        }
    }

    unsafe fn share(buffer: NonNull<[u8]>, dir: BufferDirection) -> u64 {
        let phys = PhysAddr(buffer.as_ptr().cast::<u8>() as u64);
        // 0 is never a valid bus address here (no window hands it out), so a failed mapping
        // makes the device's DMA fail visibly; the error is kept for the driver to report.
        dma_context::map(phys, buffer.len() as u64, direction(dir)).unwrap_or(0)
    }

    unsafe fn unshare(paddr: u64, _buffer: NonNull<[u8]>, _dir: BufferDirection) {
        dma_context::unmap(paddr);
    }
}
