//! A DMA window (one TCE table seen through a range of bus addresses), and creating one.
//!
//! Facts relied on:
//! - Linux `tce_build_pSeriesLP`: hcalls take the absolute bus address of an entry; entry
//!   index = (IOVA − bus base)
//!   >> page shift. Direct windows map IOVA = bus base + physical address.
//! - LoPAR "ibm,dma-window", QEMU `spapr_dma_dt`: the default window always has 4 KiB pages; its size need not
//!   be a power of two in general (1 GiB under QEMU).
//! - Linux `create_ddw` and `rtas_busy_delay`: create is retried while it answers −2 (at once) or 9900–9905 (after
//!   10^(s−9900) ms); Linux retries without bound, this driver gives up after
//!   [`CREATE_ATTEMPTS`]. A response that cannot describe a window is removed again.
//! - QEMU `rtas_ibm_create_pe_dma_window`: QEMU places a new window at bus 0 when no other window is active, else at 2^59.

use core::fmt;

use super::plan::{WindowPlan, MAX_WINDOW_SHIFT};
use super::rtas::{
    retry_busy, BusyWait, CreateResponse, DdwRtas, Delay, PeAddress, RtasError, BUSY_ATTEMPTS,
};
use super::tce::{page_size_of, MIN_PAGE_SHIFT};
use crate::addr::{BusAddr, Liobn, PhysAddr};
use crate::devtree::dma_window::DmaWindowProp;

/// How many times `ibm,create-pe-dma-window` is called while it answers busy.
pub const CREATE_ATTEMPTS: u32 = BUSY_ATTEMPTS;

/// A device's DMA address limit: the highest bus address it can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DmaMask(pub u64);

impl DmaMask {
    /// A mask of the low `bits` bits (Linux `DMA_BIT_MASK`); 64 or more means all addresses.
    pub const fn from_bits(bits: u32) -> DmaMask {
        if bits >= 64 {
            DmaMask(u64::MAX)
        } else {
            DmaMask((1u64 << bits) - 1)
        }
    }

    /// The highest bus address the device can drive.
    pub const fn highest(self) -> u64 {
        self.0
    }
}

/// Why a window description is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowError {
    /// The page shift is outside 12..=62.
    BadPageShift {
        /// The rejected shift.
        page_shift: u32,
    },
    /// The window shift is below the page shift or above 63.
    BadWindowShift {
        /// Page shift.
        page_shift: u32,
        /// The rejected window shift.
        window_shift: u32,
    },
    /// The size is zero or not a whole number of pages.
    BadSize {
        /// Size in bytes.
        size: u64,
        /// Page shift.
        page_shift: u32,
    },
    /// The bus base is not page aligned (hcalls would need unaligned IOBAs).
    MisalignedBase {
        /// The bus base.
        bus_base: BusAddr,
        /// Page shift.
        page_shift: u32,
    },
    /// Bus base + size does not fit 64 bits.
    PastEndOfBusSpace {
        /// The bus base.
        bus_base: BusAddr,
        /// Size in bytes.
        size: u64,
    },
    /// It shares bus addresses with another live window of the PE.
    Overlaps {
        /// The other window's table.
        other: Liobn,
    },
}

impl fmt::Display for WindowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WindowError::BadPageShift { page_shift } => {
                write!(f, "I/O page shift {page_shift} is outside {MIN_PAGE_SHIFT}..=62")
            }
            WindowError::BadWindowShift { page_shift, window_shift } => write!(
                f,
                "window shift {window_shift} is below page shift {page_shift} or above {MAX_WINDOW_SHIFT}"
            ),
            WindowError::BadSize { size, page_shift } => {
                write!(f, "window size {size:#x} is not a non-zero multiple of 2^{page_shift}")
            }
            WindowError::MisalignedBase { bus_base, page_shift } => {
                write!(f, "window bus base {bus_base} is not aligned to 2^{page_shift}")
            }
            WindowError::PastEndOfBusSpace { bus_base, size } => {
                write!(f, "window at {bus_base} of {size:#x} bytes runs past 2^64")
            }
            WindowError::Overlaps { other } => write!(f, "window overlaps the PE's window {other}"),
        }
    }
}

/// One DMA window: a TCE table (LIOBN) translating `[bus_base, bus_base + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaWindow {
    liobn: Liobn,
    bus_base: BusAddr,
    page_shift: u32,
    tce_count: u64,
}

impl DmaWindow {
    /// A window of `2^window_shift` bytes in `2^page_shift`-byte pages.
    pub fn new(
        liobn: Liobn,
        bus_base: BusAddr,
        page_shift: u32,
        window_shift: u32,
    ) -> Result<Self, WindowError> {
        check_shifts(page_shift, window_shift)?;
        Self::with_size(liobn, bus_base, page_shift, 1u64 << window_shift)
    }

    /// A window of `size` bytes (a multiple of the page size).
    pub fn with_size(
        liobn: Liobn,
        bus_base: BusAddr,
        page_shift: u32,
        size: u64,
    ) -> Result<Self, WindowError> {
        let page_size = page_size_of(page_shift).map_err(|_| WindowError::BadPageShift { page_shift })?;
        if size == 0 || !size.is_multiple_of(page_size) {
            return Err(WindowError::BadSize { size, page_shift });
        }
        if !bus_base.is_aligned(page_size) {
            return Err(WindowError::MisalignedBase { bus_base, page_shift });
        }
        if bus_base.checked_add(size).is_none() {
            return Err(WindowError::PastEndOfBusSpace { bus_base, size });
        }
        Ok(Self { liobn, bus_base, page_shift, tce_count: size >> page_shift })
    }

    /// The default window from `ibm,dma-window` (always 4 KiB pages).
    pub fn from_default(prop: &DmaWindowProp) -> Result<Self, WindowError> {
        Self::with_size(prop.liobn, prop.bus_addr, MIN_PAGE_SHIFT, prop.size)
    }

    /// The window's TCE table.
    pub const fn liobn(&self) -> Liobn {
        self.liobn
    }

    /// The first bus address.
    pub const fn bus_base(&self) -> BusAddr {
        self.bus_base
    }

    /// log2 of the I/O page size.
    pub const fn page_shift(&self) -> u32 {
        self.page_shift
    }

    /// The I/O page size in bytes.
    pub const fn page_size(&self) -> u64 {
        1 << self.page_shift
    }

    /// Number of TCEs (pages).
    pub const fn tce_count(&self) -> u64 {
        self.tce_count
    }

    /// Size in bytes.
    pub const fn size(&self) -> u64 {
        self.tce_count << self.page_shift
    }

    /// One past the last bus address (fits `u64` by construction).
    pub const fn end(&self) -> u64 {
        self.bus_base.0 + self.size()
    }

    /// Whether the two windows share a bus address.
    pub fn overlaps(&self, other: &DmaWindow) -> bool {
        self.bus_base.0 < other.end() && other.bus_base.0 < self.end()
    }

    /// True if `[iova, iova + len)` lies inside the window (`len` 0 counts as one byte).
    pub fn contains(&self, iova: BusAddr, len: u64) -> bool {
        match iova.get().checked_add(len.max(1)) {
            Some(end) => iova >= self.bus_base && end <= self.end(),
            None => false,
        }
    }

    /// The direct-mapping IOVA of `phys` (bus base + physical), if the window covers it.
    pub fn iova_for_phys(&self, phys: PhysAddr) -> Option<BusAddr> {
        if phys.get() < self.size() {
            self.bus_base.checked_add(phys.get())
        } else {
            None
        }
    }

    /// The bus address of entry `index`, if the window has it.
    pub fn ioba_of(&self, index: u64) -> Option<BusAddr> {
        if index < self.tce_count {
            self.bus_base.checked_add(index << self.page_shift)
        } else {
            None
        }
    }

    /// The index of the entry translating `iova`, if the window covers it.
    pub fn index_of(&self, iova: BusAddr) -> Option<u64> {
        if self.contains(iova, 1) {
            Some((iova.get() - self.bus_base.get()) >> self.page_shift)
        } else {
            None
        }
    }

    /// True if a device limited to `mask` can reach every bus address of the window.
    pub fn fits_dma_mask(&self, mask: DmaMask) -> bool {
        self.end() - 1 <= mask.highest()
    }
}

fn check_shifts(page_shift: u32, window_shift: u32) -> Result<(), WindowError> {
    page_size_of(page_shift).map_err(|_| WindowError::BadPageShift { page_shift })?;
    if window_shift < page_shift || window_shift > MAX_WINDOW_SHIFT {
        return Err(WindowError::BadWindowShift { page_shift, window_shift });
    }
    Ok(())
}

/// Why a window could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateError {
    /// The plan itself is unusable; nothing was called.
    BadPlan(WindowError),
    /// `ibm,create-pe-dma-window` failed.
    Rtas(RtasError),
    /// It still answered busy after [`CREATE_ATTEMPTS`] calls.
    StillBusy {
        /// Calls made.
        attempts: u32,
        /// The last answer.
        last: RtasError,
    },
    /// It returned a window this driver cannot use; the window was removed again.
    BadResponse {
        /// What it returned.
        response: CreateResponse,
        /// What is wrong with it.
        why: WindowError,
        /// The removal's failure, if it failed too.
        removal: Option<RtasError>,
    },
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateError::BadPlan(why) => write!(f, "refusing to create a DMA window: {why}"),
            CreateError::Rtas(error) => write!(f, "{error}"),
            CreateError::StillBusy { attempts, last } => {
                write!(
                    f,
                    "{} was still busy after {attempts} attempts (last status {})",
                    last.call, last.status
                )
            }
            CreateError::BadResponse { response, why, removal } => {
                write!(
                    f,
                    "ibm,create-pe-dma-window returned an unusable window (liobn {}, bus base {}): {why}",
                    response.liobn, response.bus_base
                )?;
                match removal {
                    Some(error) => write!(f, "; removing it failed too: {error}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Creates the planned window, retrying busy answers through `delay`.
pub fn create_window(
    rtas: &mut impl DdwRtas,
    delay: &mut impl Delay,
    pe: PeAddress,
    plan: &WindowPlan,
) -> Result<DmaWindow, CreateError> {
    check_shifts(plan.page_shift, plan.window_shift).map_err(CreateError::BadPlan)?;
    let response = create_with_retry(rtas, delay, pe, plan)?;
    DmaWindow::new(response.liobn, response.bus_base, plan.page_shift, plan.window_shift).map_err(|why| {
        let removal = rtas.remove(response.liobn).err();
        CreateError::BadResponse { response, why, removal }
    })
}

fn create_with_retry(
    rtas: &mut impl DdwRtas,
    delay: &mut impl Delay,
    pe: PeAddress,
    plan: &WindowPlan,
) -> Result<CreateResponse, CreateError> {
    retry_busy(delay, || rtas.create(pe, plan.page_shift, plan.window_shift)).map_err(|last| {
        match BusyWait::for_status(last.status) {
            Some(_) => CreateError::StillBusy { attempts: CREATE_ATTEMPTS, last },
            None => CreateError::Rtas(last),
        }
    })
}
