//! An IOVA allocator over the pages of one DMA window, for dynamic and default-window mapping.
//!
//! First fit over free extents kept in a `BTreeMap` (a window may have 2^31 pages, too many
//! for a bitmap); allocations are remembered exactly so that a free must name a whole
//! allocation. Facts relied on:
//! - Linux `enable_ddw`: it reserves the PHB's 32-bit MMIO bus range inside a dynamic window
//!   based at bus 0 so IOVAs never alias MMIO32; QEMU `SPAPR_PCI_MSI_WINDOW`: the MSI doorbell sits at bus
//!   0x400_0000_0000 inside the PHB's IOMMU space. Both are [`IovaAllocator::reserve`]d by
//!   the caller.
//! - A window based at bus 0 would hand out IOVA 0, which virtio-drivers (and Linux's
//!   `DMA_MAPPING_ERROR` conventions) treat as failure, so the page holding bus address 0 is
//!   reserved at construction.
//! - Linux `dma_iommu_dma_supported`: a device's DMA mask bounds the last byte of every IOVA it is given.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use super::window::{DmaMask, DmaWindow};
use crate::addr::BusAddr;

/// Why an allocation, free or reservation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IovaError {
    /// Zero pages were asked for.
    ZeroPages,
    /// The alignment is not a power of two.
    BadAlignment {
        /// The alignment in pages.
        align_pages: u64,
    },
    /// No free run of pages fits below the mask.
    NoSpace {
        /// Pages asked for.
        pages: u64,
        /// The device's mask.
        mask: DmaMask,
    },
    /// Nothing was allocated at this address (never, or already freed).
    NotAllocated {
        /// The address given to `free`.
        iova: BusAddr,
    },
    /// The allocation at this address has another size.
    SizeMismatch {
        /// The address given to `free`.
        iova: BusAddr,
        /// Pages given to `free`.
        pages: u64,
        /// Pages actually allocated there.
        allocated: u64,
    },
    /// A reservation overlaps a live allocation.
    ReservedInUse {
        /// Start of the reservation.
        start: BusAddr,
        /// Its length in bytes.
        len: u64,
    },
}

impl fmt::Display for IovaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IovaError::ZeroPages => write!(f, "cannot allocate zero IOVA pages"),
            IovaError::BadAlignment { align_pages } => {
                write!(f, "IOVA alignment of {align_pages} pages is not a power of two")
            }
            IovaError::NoSpace { pages, mask } => {
                write!(f, "no {pages} free IOVA pages below DMA mask {:#x}", mask.highest())
            }
            IovaError::NotAllocated { iova } => write!(f, "freeing IOVA {iova}, which is not allocated"),
            IovaError::SizeMismatch { iova, pages, allocated } => {
                write!(f, "freeing {pages} pages at IOVA {iova}, but {allocated} pages were allocated there")
            }
            IovaError::ReservedInUse { start, len } => {
                write!(f, "cannot reserve IOVAs [{start}, +{len:#x}): they are allocated")
            }
        }
    }
}

/// Allocates runs of pages of one window. Indices below are window-relative page numbers.
#[derive(Clone, Debug)]
pub struct IovaAllocator {
    window: DmaWindow,
    /// Free extents: first page → page count (never adjacent, never empty).
    free: BTreeMap<u64, u64>,
    /// Allocations: first page → page count.
    allocated: BTreeMap<u64, u64>,
    in_use: u64,
}

impl IovaAllocator {
    /// An allocator with every page of `window` free, except the page holding bus address 0.
    pub fn new(window: &DmaWindow) -> Self {
        let mut allocator = Self {
            window: *window,
            free: BTreeMap::from([(0, window.tce_count())]),
            allocated: BTreeMap::new(),
            in_use: 0,
        };
        if window.bus_base().get() == 0 {
            allocator.carve(0, 1);
        }
        allocator
    }

    /// Pages currently allocated (reservations not counted).
    pub fn in_use(&self) -> u64 {
        self.in_use
    }

    /// Pages free for allocation.
    pub fn free_pages(&self) -> u64 {
        self.free.values().sum()
    }

    /// Withdraws every page overlapping `[start, start + len)` (clipped to the window) from
    /// allocation for good and returns how many pages that newly took.
    pub fn reserve(&mut self, start: BusAddr, len: u64) -> Result<u64, IovaError> {
        let base = self.window.bus_base().get();
        let low = start.get().max(base);
        let high = start.get().saturating_add(len).min(self.window.end());
        if len == 0 || low >= high {
            return Ok(0);
        }
        let first = (low - base) >> self.window.page_shift();
        let end = (high - base).div_ceil(self.window.page_size());
        let overlaps = self.allocated.range(..end).next_back().is_some_and(|(&s, &n)| s + n > first);
        if overlaps {
            return Err(IovaError::ReservedInUse { start, len });
        }
        Ok(self.carve(first, end))
    }

    /// Removes pages `[first, end)` from the free extents; returns how many were free.
    fn carve(&mut self, first: u64, end: u64) -> u64 {
        let hit: Vec<(u64, u64)> =
            self.free.range(..end).filter(|&(&s, &n)| s + n > first).map(|(&s, &n)| (s, n)).collect();
        let mut taken = 0;
        for (start, pages) in hit {
            self.free.remove(&start);
            let stop = start + pages;
            if start < first {
                self.free.insert(start, first - start);
            }
            if end < stop {
                self.free.insert(end, stop - end);
            }
            taken += stop.min(end) - start.max(first);
        }
        taken
    }

    /// Pages `[0, limit)` whose every byte a device with `mask` can address.
    fn page_limit(&self, mask: DmaMask) -> u64 {
        let base = u128::from(self.window.bus_base().get());
        let reachable = (u128::from(mask.highest()) + 1).saturating_sub(base);
        let pages = reachable >> self.window.page_shift();
        u64::try_from(pages).unwrap_or(u64::MAX).min(self.window.tce_count())
    }

    /// Allocates `pages` pages whose bus address is a multiple of `align_pages` pages and whose
    /// last byte is at most `mask`; returns the first page's bus address (never 0).
    pub fn alloc(&mut self, pages: u64, align_pages: u64, mask: DmaMask) -> Result<BusAddr, IovaError> {
        if pages == 0 {
            return Err(IovaError::ZeroPages);
        }
        if !align_pages.is_power_of_two() {
            return Err(IovaError::BadAlignment { align_pages });
        }
        let limit = self.page_limit(mask);
        let base_page = self.window.bus_base().get() >> self.window.page_shift();
        let fits = |(&start, &len): (&u64, &u64)| {
            let first = (base_page + start).checked_next_multiple_of(align_pages)? - base_page;
            let end = first.checked_add(pages)?;
            (end <= start + len && end <= limit).then_some(first)
        };
        let first = self.free.range(..limit).find_map(fits).ok_or(IovaError::NoSpace { pages, mask })?;
        self.carve(first, first + pages);
        self.allocated.insert(first, pages);
        self.in_use += pages;
        Ok(BusAddr(self.window.bus_base().get() + (first << self.window.page_shift())))
    }

    /// Checks that `pages` pages at `iova` are exactly one live allocation; returns its first
    /// window-relative page.
    pub fn check_allocated(&self, iova: BusAddr, pages: u64) -> Result<u64, IovaError> {
        let index = self.window.index_of(iova).filter(|_| iova.is_aligned(self.window.page_size()));
        let first = index.ok_or(IovaError::NotAllocated { iova })?;
        match self.allocated.get(&first) {
            None => Err(IovaError::NotAllocated { iova }),
            Some(&allocated) if allocated != pages => Err(IovaError::SizeMismatch { iova, pages, allocated }),
            Some(_) => Ok(first),
        }
    }

    /// Frees exactly one earlier allocation of `pages` pages at `iova`.
    pub fn free(&mut self, iova: BusAddr, pages: u64) -> Result<(), IovaError> {
        let first = self.check_allocated(iova, pages)?;
        self.allocated.remove(&first);
        self.in_use -= pages;
        self.release(first, pages);
        Ok(())
    }

    /// Returns `[first, first + pages)` to the free extents, merging with neighbours.
    fn release(&mut self, first: u64, pages: u64) {
        let (mut start, mut end) = (first, first + pages);
        if let Some((&before, &len)) = self.free.range(..first).next_back() {
            if before + len == first {
                self.free.remove(&before);
                start = before;
            }
        }
        if let Some(len) = self.free.remove(&end) {
            end += len;
        }
        self.free.insert(start, end - start);
    }
}

#[cfg(test)]
#[path = "tests_iova.rs"]
mod tests;
