//! Mapping buffers on demand through a window: the default window, or a DDW that does not
//! cover all of RAM.
//!
//! An [`IovaWindow`] pairs a window with its IOVA allocator so that the two can never be
//! mismatched. Facts relied on:
//! - Linux commit "powerpc/iommu: DMA address offset is incorrectly calculated with 2MB TCEs"
//!   (2023): the IOVA handed to the device keeps the buffer's offset inside its I/O page,
//!   iova % page == phys % page;
//! - Linux `arch/powerpc/platforms/pseries/iommu.c : tce_buildmulti_pSeriesLP`: one page ⇒
//!   H_PUT_TCE, more ⇒ H_PUT_TCE_INDIRECT with at most 512 per call, or H_PUT_TCE per page
//!   without `hcall-multi-tce`; READ always, WRITE unless to-device; on failure the written
//!   entries are cleared and the IOVA freed;
//! - LoPAR "TCE Update Synchronisation": `sync` after updating TCEs, before the device uses
//!   them.
//!
//! A [`Mapping`] is neither `Clone` nor `Copy`: unmapping consumes it, so a buffer is unmapped
//! once and only at the granularity it was mapped. If clearing fails the IOVA stays allocated
//! (its entries may still be live) and the mapping is handed back inside the error.

use core::fmt;

use super::hcall::{HcallError, TceCalls};
use super::iova::{IovaAllocator, IovaError};
use super::map::{clear_run, write_run, MapStats, MultiTce, TceRun};
use super::tce::DmaDirection;
use super::window::{DmaMask, DmaWindow};
use crate::addr::{BusAddr, Liobn, PhysAddr};

/// A buffer mapped into a dynamic window. Give it back to [`IovaWindow::unmap`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a mapping must be unmapped, or its IOVA and TCEs stay in use"]
pub struct Mapping {
    liobn: Liobn,
    iova: BusAddr,
    len: u64,
    first_page: BusAddr,
    pages: u64,
}

impl Mapping {
    /// The bus address the device uses for the buffer's first byte.
    pub fn iova(&self) -> BusAddr {
        self.iova
    }

    /// The buffer's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false: empty buffers are never mapped.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of I/O pages (TCEs) the mapping uses.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The window's TCE table.
    pub fn liobn(&self) -> Liobn {
        self.liobn
    }
}

/// Why a buffer could not be mapped. Nothing stays mapped or allocated unless `cleanup` says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferError {
    /// The buffer is empty.
    Empty,
    /// `phys + len` does not fit 64 bits.
    PastEndOfMemory {
        /// Start of the buffer.
        phys: PhysAddr,
        /// Its length.
        len: u64,
    },
    /// No IOVA range was free.
    Iova(IovaError),
    /// A TCE hcall failed.
    Hcall {
        /// The failing call.
        error: HcallError,
        /// The first failure while clearing, if any (the IOVA is then kept allocated).
        cleanup: Option<HcallError>,
    },
}

impl fmt::Display for BufferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BufferError::Empty => write!(f, "cannot map an empty DMA buffer"),
            BufferError::PastEndOfMemory { phys, len } => {
                write!(f, "DMA buffer at {phys} of {len:#x} bytes runs past 2^64")
            }
            BufferError::Iova(error) => write!(f, "cannot map DMA buffer: {error}"),
            BufferError::Hcall { error, cleanup: None } => {
                write!(f, "mapping DMA buffer: {error}; its TCEs were cleared")
            }
            BufferError::Hcall { error, cleanup: Some(cleanup) } => write!(
                f,
                "mapping DMA buffer: {error}; clearing its TCEs failed too ({cleanup}), its IOVAs stay reserved"
            ),
        }
    }
}

/// Why a mapping could not be undone; the mapping is handed back.
#[derive(Debug, PartialEq, Eq)]
pub struct UnmapError {
    /// The mapping, still allocated.
    pub mapping: Mapping,
    /// What went wrong.
    pub reason: UnmapReason,
}

impl UnmapError {
    /// The mapping's window is gone.
    pub fn no_window(mapping: Mapping) -> Self {
        Self { mapping, reason: UnmapReason::NoWindow }
    }
}

/// Why unmapping failed (inside an [`UnmapError`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnmapReason {
    /// The mapping belongs to another window.
    WrongWindow {
        /// This window's table.
        window: Liobn,
    },
    /// Clearing the TCEs failed; some may still be live.
    Hcall(HcallError),
    /// The allocator does not know the mapping's IOVA range.
    Iova(IovaError),
    /// The PE no longer has the window the mapping was made in.
    NoWindow,
}

impl fmt::Display for UnmapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (iova, liobn) = (self.mapping.iova, self.mapping.liobn);
        write!(f, "unmapping IOVA {iova} of window {liobn}: {}", self.reason)
    }
}

impl fmt::Display for UnmapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnmapReason::WrongWindow { window } => write!(f, "it was given to window {window}"),
            UnmapReason::Hcall(error) => write!(f, "{error}"),
            UnmapReason::Iova(error) => write!(f, "{error}"),
            UnmapReason::NoWindow => write!(f, "the PE no longer has that window"),
        }
    }
}

/// A window used through an IOVA allocator.
#[derive(Clone, Debug)]
pub struct IovaWindow {
    window: DmaWindow,
    allocator: IovaAllocator,
    multi_tce: MultiTce,
}

impl IovaWindow {
    /// Manages `window` (assumed clear) with a fresh allocator.
    pub fn new(window: DmaWindow, multi_tce: MultiTce) -> Self {
        Self { allocator: IovaAllocator::new(&window), window, multi_tce }
    }

    /// A window whose allocator never hands out the bus ranges `holes` (32-bit MMIO, MSI
    /// doorbells: Linux `enable_ddw` reserves the PHB's MMIO32 range in a window at bus 0).
    pub fn with_holes(window: DmaWindow, multi_tce: MultiTce, holes: &[(BusAddr, u64)]) -> Self {
        let mut dynamic = Self::new(window, multi_tce);
        for &(start, len) in holes {
            // A fresh allocator has nothing allocated, so reserving cannot collide.
            let _ = dynamic.allocator.reserve(start, len);
        }
        dynamic
    }

    /// The window.
    pub fn window(&self) -> &DmaWindow {
        &self.window
    }

    /// The allocator, e.g. to [`reserve`](IovaAllocator::reserve) MMIO or MSI ranges.
    pub fn allocator_mut(&mut self) -> &mut IovaAllocator {
        &mut self.allocator
    }

    /// Pages currently mapped.
    pub fn in_use(&self) -> u64 {
        self.allocator.in_use()
    }

    /// Maps `[phys, phys + len)` for a device limited to `mask`, then `sync`s.
    pub fn map_buffer(
        &mut self,
        calls: &mut impl TceCalls,
        phys: PhysAddr,
        len: u64,
        direction: DmaDirection,
        mask: DmaMask,
    ) -> Result<Mapping, BufferError> {
        let page = self.window.page_size();
        let last = phys.get().checked_add(len.checked_sub(1).ok_or(BufferError::Empty)?);
        let last = last.ok_or(BufferError::PastEndOfMemory { phys, len })?;
        let first_phys = phys.align_down(page);
        let pages = ((last - first_phys.get()) >> self.window.page_shift()) + 1;
        if pages.checked_mul(page).and_then(|bytes| first_phys.checked_add(bytes)).is_none() {
            return Err(BufferError::PastEndOfMemory { phys, len });
        }
        let first_page = self.allocator.alloc(pages, 1, mask).map_err(BufferError::Iova)?;
        // The allocator hands out aligned ranges inside the window, so this always succeeds.
        let Some(run) = TceRun::checked(&self.window, first_page, first_phys, pages) else {
            let _ = self.allocator.free(first_page, pages);
            return Err(BufferError::PastEndOfMemory { phys, len });
        };
        let mut stats = MapStats::default();
        if let Err(failure) =
            write_run(calls, &self.window, &run, direction.permission(), self.multi_tce, &mut stats)
        {
            let attempted = TceRun { pages: failure.attempted.min(pages), ..run };
            let cleanup = clear_run(calls, &self.window, &attempted, self.multi_tce, &mut stats).err();
            if cleanup.is_none() {
                // Just allocated with this size, so this cannot fail.
                let _ = self.allocator.free(first_page, pages);
            }
            calls.sync();
            return Err(BufferError::Hcall { error: failure.error, cleanup });
        }
        calls.sync();
        let iova = BusAddr(first_page.get() + (phys.get() - first_phys.get()));
        Ok(Mapping { liobn: self.window.liobn(), iova, len, first_page, pages })
    }

    /// Clears the mapping's TCEs, `sync`s and frees its IOVAs.
    pub fn unmap(&mut self, calls: &mut impl TceCalls, mapping: Mapping) -> Result<(), UnmapError> {
        if mapping.liobn != self.window.liobn() {
            let reason = UnmapReason::WrongWindow { window: self.window.liobn() };
            return Err(UnmapError { mapping, reason });
        }
        if let Err(error) = self.allocator.check_allocated(mapping.first_page, mapping.pages) {
            return Err(UnmapError { mapping, reason: UnmapReason::Iova(error) });
        }
        let run = TceRun { iova: mapping.first_page, phys: PhysAddr(0), pages: mapping.pages };
        let cleared = clear_run(calls, &self.window, &run, self.multi_tce, &mut MapStats::default());
        calls.sync();
        if let Err(error) = cleared {
            return Err(UnmapError { mapping, reason: UnmapReason::Hcall(error) });
        }
        match self.allocator.free(mapping.first_page, mapping.pages) {
            Ok(()) => Ok(()),
            Err(error) => Err(UnmapError { mapping, reason: UnmapReason::Iova(error) }),
        }
    }
}
