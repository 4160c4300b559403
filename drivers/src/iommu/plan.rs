//! Choosing the I/O page size and the size of a new DMA window from a query response.
//!
//! Facts relied on:
//! - Linux `iommu_get_page_shift`: the query's page-size mask, bit 0 = 4K (12),
//!   1 = 64K (16), 2 = 16M (24), 3 = 32M (25), 4 = 64M (26), 5 = 128M (27), 6 = 256M (28),
//!   7 = 16G (34), 8 = 2M (21, "2M is out of order", newer than LoPAR 2.9); take the largest.
//! - Linux `enable_ddw`, `ddw_memory_hotplug_max`: the window wants `order_base_2(max RAM address incl. hot-plug)` bytes and is
//!   capped by `largest_block << page_shift` and the device's mask bits; capped below RAM it is
//!   used dynamically (through an IOVA allocator), else RAM is mapped directly.
//! - QEMU `rtas_ibm_create_pe_dma_window`: the TCE count is a uint32 `1 << (window_shift
//!   − page_shift)`, so window_shift − page_shift must stay ≤ 31.
//! - QEMU 7.2 (`spapr_page_mask_to_query_mask` of the default `pgsz`) reports mask 0x107 (Linux picks 16M pages); 8 GiB RAM ⇒ window 2^33 = 512 TCEs.
//!
//! The largest-block cap uses floor(log2) so the window never exceeds the block (Linux rounds
//! up). The device-mask cap limits only the window's size, as in Linux; whether the device can
//! reach the window's bus base (2^59 under QEMU) is checked on the created window
//! ([`DmaWindow::fits_dma_mask`](super::window::DmaWindow::fits_dma_mask)).

use core::fmt;

use super::rtas::QueryResponse;

/// Query mask bit → I/O page shift, in Linux `iommu_get_page_shift` order.
pub const PAGE_SIZE_BITS: [(u32, u32); 9] = [
    (1 << 0, 12),
    (1 << 1, 16),
    (1 << 2, 24),
    (1 << 3, 25),
    (1 << 4, 26),
    (1 << 5, 27),
    (1 << 6, 28),
    (1 << 7, 34),
    (1 << 8, 21),
];

/// QEMU's limit on TCEs per window, as a shift: window_shift − page_shift ≤ 31.
pub const MAX_TCE_COUNT_SHIFT: u32 = 31;

/// Largest window shift planned, so that window sizes fit a `u64`.
pub const MAX_WINDOW_SHIFT: u32 = 63;

/// The largest I/O page shift offered by a query mask, or `None` if no known bit is set.
pub fn largest_page_shift(mask: u32) -> Option<u32> {
    largest_page_shift_in(&PAGE_SIZE_BITS, mask)
}

/// [`largest_page_shift`] over another (bit, shift) table — for tests that check a table
/// against an independent one.
pub fn largest_page_shift_in(table: &[(u32, u32)], mask: u32) -> Option<u32> {
    table.iter().filter(|(bit, _)| mask & bit != 0).map(|&(_, shift)| shift).max()
}

/// The query mask bit standing for an I/O page shift, or `None` if there is none.
pub fn query_bit_for_page_shift(page_shift: u32) -> Option<u32> {
    PAGE_SIZE_BITS.iter().find(|&&(_, shift)| shift == page_shift).map(|&(bit, _)| bit)
}

/// ⌈log2 value⌉ (Linux `order_base_2`); 0 for 0 and 1, 64 above 2^63.
pub const fn ceil_log2(value: u64) -> u32 {
    if value <= 1 {
        0
    } else {
        64 - (value - 1).leading_zeros()
    }
}

/// ⌊log2 value⌋, or `None` for 0.
pub const fn floor_log2(value: u64) -> Option<u32> {
    if value == 0 {
        None
    } else {
        Some(63 - value.leading_zeros())
    }
}

/// How the new window is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WindowMode {
    /// The window covers all RAM: every page is mapped once, IOVA = bus base + physical.
    Direct,
    /// The window is smaller than RAM: buffers are mapped on demand through an IOVA allocator.
    Dynamic,
    /// The window covers the RAM present but not all memory may reach (hot-plug, persistent
    /// memory): RAM below `direct_end` is mapped directly, anything above it on demand in the
    /// window's upper part (Linux v6.11 "Split Dynamic DMA Window to be used in Hybrid mode").
    Hybrid {
        /// One past the last directly mapped physical address (window-page aligned).
        direct_end: u64,
    },
}

/// What decided the window size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WindowLimit {
    /// The highest RAM address (the window covers it).
    Ram,
    /// The query's largest block of TCEs.
    LargestBlock,
    /// The device's DMA mask.
    DeviceMask,
    /// QEMU's 2^31 TCEs per window.
    TceCount,
    /// The 2^63-byte ceiling of this planner.
    AddressSpace,
    /// A cap the kernel was given (`ddw-max=` on the command line).
    Policy,
}

/// The window to ask `ibm,create-pe-dma-window` for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowPlan {
    /// log2 of the I/O page size.
    pub page_shift: u32,
    /// log2 of the window size in bytes.
    pub window_shift: u32,
    /// Direct or dynamic use.
    pub mode: WindowMode,
    /// What decided `window_shift`.
    pub limit: WindowLimit,
}

impl WindowPlan {
    /// Number of TCEs in the planned window, or `None` if the shifts are inconsistent.
    pub fn tce_count(&self) -> Option<u64> {
        let shift = self.window_shift.checked_sub(self.page_shift)?;
        1u64.checked_shl(shift)
    }
}

/// Why no window can be planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The query offered no page size this driver knows.
    NoPageSize {
        /// The page-size mask from the query.
        mask: u32,
    },
    /// The highest RAM address is 0.
    NoRam,
    /// The query's largest block is 0 TCEs.
    NoTces,
    /// The caps leave a window smaller than one I/O page.
    WindowSmallerThanPage {
        /// The chosen page shift.
        page_shift: u32,
        /// The capped window shift.
        window_shift: u32,
        /// Which cap it was.
        limit: WindowLimit,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NoPageSize { mask } => {
                write!(f, "ibm,query-pe-dma-window offered no known I/O page size (mask {mask:#x})")
            }
            PlanError::NoRam => write!(f, "cannot size a DMA window: the highest RAM address is 0"),
            PlanError::NoTces => write!(f, "ibm,query-pe-dma-window reported a largest block of 0 TCEs"),
            PlanError::WindowSmallerThanPage { page_shift, window_shift, limit } => write!(
                f,
                "a DMA window of 2^{window_shift} bytes ({limit:?} limit) is smaller than one 2^{page_shift}-byte \
                 I/O page"
            ),
        }
    }
}

/// Plans a window for RAM ending at `ram_end` (exclusive, including hot-pluggable memory) and a
/// device that drives `device_mask_bits` address bits.
pub fn plan_window(
    query: &QueryResponse,
    ram_end: u64,
    device_mask_bits: u32,
) -> Result<WindowPlan, PlanError> {
    plan_window_capped(query, ram_end, device_mask_bits, None)
}

/// What a window is planned for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanFor {
    /// One past the highest address of the RAM present now.
    pub ram_top: u64,
    /// One past the highest address RAM may ever occupy (hot-plug included).
    pub ram_end: u64,
    /// Address bits of the devices the window is for.
    pub device_mask_bits: u32,
    /// A cap on the window (log2 bytes), from policy.
    pub max_window_shift: Option<u32>,
}

/// [`plan_window`] with the window also capped at `2^max_window_shift` bytes when given (a
/// policy limit, as a small TCE budget would impose).
pub fn plan_window_capped(
    query: &QueryResponse,
    ram_end: u64,
    device_mask_bits: u32,
    max_window_shift: Option<u32>,
) -> Result<WindowPlan, PlanError> {
    plan_window_for(query, &PlanFor { ram_top: ram_end, ram_end, device_mask_bits, max_window_shift })
}

/// Plans a window for `what`: direct when it covers `ram_end`; hybrid when it covers the RAM
/// present (`ram_top`) with room above it; dynamic otherwise.
pub fn plan_window_for(query: &QueryResponse, what: &PlanFor) -> Result<WindowPlan, PlanError> {
    let PlanFor { ram_top, ram_end, device_mask_bits, max_window_shift } = *what;
    let ram_top = ram_top.min(ram_end);
    let mask = query.page_size_mask;
    let page_shift = largest_page_shift(mask).ok_or(PlanError::NoPageSize { mask })?;
    if ram_end == 0 {
        return Err(PlanError::NoRam);
    }
    let block_shift = floor_log2(query.largest_block).ok_or(PlanError::NoTces)?;
    let wanted_shift = ceil_log2(ram_end).max(page_shift);
    let caps = [
        (WindowLimit::LargestBlock, block_shift.saturating_add(page_shift)),
        (WindowLimit::DeviceMask, device_mask_bits),
        (WindowLimit::TceCount, page_shift + MAX_TCE_COUNT_SHIFT),
        (WindowLimit::AddressSpace, MAX_WINDOW_SHIFT),
        (WindowLimit::Policy, max_window_shift.unwrap_or(u32::MAX)),
    ];
    let (limit, window_shift) =
        caps.into_iter()
            .fold((WindowLimit::Ram, wanted_shift), |best, cap| if cap.1 < best.1 { cap } else { best });
    if window_shift < page_shift {
        return Err(PlanError::WindowSmallerThanPage { page_shift, window_shift, limit });
    }
    let window_size = 1u64.checked_shl(window_shift).unwrap_or(u64::MAX);
    let direct_end = ram_top.checked_next_multiple_of(1 << page_shift).unwrap_or(u64::MAX);
    let mode = if window_shift >= wanted_shift {
        WindowMode::Direct
    } else if ram_top > 0 && direct_end < window_size {
        WindowMode::Hybrid { direct_end }
    } else {
        WindowMode::Dynamic
    };
    Ok(WindowPlan { page_shift, window_shift, mode, limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn qemu_query(mask: u32) -> QueryResponse {
        QueryResponse {
            windows_available: 1,
            largest_block: 1 << 31,
            page_size_mask: mask,
            migration_capable: 0,
        }
    }

    #[test]
    fn page_size_choice() {
        assert_eq!(largest_page_shift(0x107), Some(24)); // QEMU 7.2: 4K, 64K, 16M, 2M
        assert_eq!(largest_page_shift(0x3), Some(16)); // pgsz=0x11000
        assert_eq!(largest_page_shift(0x1), Some(12)); // pgsz=0x1000
        assert_eq!(largest_page_shift(0x103), Some(21)); // 2M is out of order but still compared
        assert_eq!(largest_page_shift(0x1ff), Some(34));
        assert_eq!(largest_page_shift(0), None);
        assert_eq!(largest_page_shift(0xfe00), None); // unknown bits only
        assert_eq!(query_bit_for_page_shift(21), Some(0x100));
        assert_eq!(query_bit_for_page_shift(13), None);
    }

    #[test]
    fn log2_helpers() {
        assert_eq!((ceil_log2(0), ceil_log2(1), ceil_log2(2), ceil_log2(3)), (0, 0, 1, 2));
        assert_eq!((ceil_log2(2 * GIB), ceil_log2(2 * GIB + 1), ceil_log2(u64::MAX)), (31, 32, 64));
        assert_eq!((floor_log2(0), floor_log2(1), floor_log2(0x8000_0001)), (None, Some(0), Some(31)));
    }

    #[test]
    fn qemu_72_windows_are_direct() {
        let two = plan_window(&qemu_query(0x107), 2 * GIB, 64).unwrap();
        assert_eq!(
            two,
            WindowPlan {
                page_shift: 24,
                window_shift: 31,
                mode: WindowMode::Direct,
                limit: WindowLimit::Ram
            }
        );
        let eight = plan_window(&qemu_query(0x107), 8 * GIB, 64).unwrap();
        assert_eq!((eight.window_shift, eight.tce_count(), eight.mode), (33, Some(512), WindowMode::Direct));
        let pgsz_64k = plan_window(&qemu_query(0x3), 2 * GIB, 64).unwrap();
        assert_eq!((pgsz_64k.page_shift, pgsz_64k.window_shift), (16, 31));
        let pgsz_4k = plan_window(&qemu_query(0x1), 16 * GIB, 64).unwrap();
        assert_eq!((pgsz_4k.page_shift, pgsz_4k.window_shift), (12, 34));
        assert_eq!(pgsz_4k.tce_count(), Some(1 << 22));
        // Tiny RAM: at least one page.
        assert_eq!(plan_window(&qemu_query(0x107), 0x1000, 64).unwrap().window_shift, 24);
    }

    #[test]
    fn caps_make_the_window_dynamic() {
        // PowerVM-like: 2^15 TCEs of 64K = 2 GiB for 64 GiB of RAM.
        let powervm = QueryResponse { largest_block: (1 << 15) + 100, ..qemu_query(0x3) };
        let plan = plan_window(&powervm, 64 * GIB, 64).unwrap();
        assert_eq!(
            (plan.window_shift, plan.mode, plan.limit),
            (31, WindowMode::Dynamic, WindowLimit::LargestBlock)
        );
        // QEMU's uint32 TCE count: 4K pages and 16 TiB of RAM.
        let six_outputs = QueryResponse { largest_block: 1 << 37, ..qemu_query(0x1) };
        let huge = plan_window(&six_outputs, 16 << 40, 64).unwrap();
        assert_eq!(
            (huge.window_shift, huge.mode, huge.limit),
            (43, WindowMode::Dynamic, WindowLimit::TceCount)
        );
        // A 40-bit device with 2 TiB of RAM.
        let masked = plan_window(&qemu_query(0x107), 2 << 40, 40).unwrap();
        assert_eq!(
            (masked.window_shift, masked.mode, masked.limit),
            (40, WindowMode::Dynamic, WindowLimit::DeviceMask)
        );
        // RAM reaching past 2^63.
        let top = plan_window(&QueryResponse { largest_block: u64::MAX, ..qemu_query(0x80) }, u64::MAX, 64)
            .unwrap();
        assert_eq!(
            (top.window_shift, top.limit, top.mode),
            (63, WindowLimit::AddressSpace, WindowMode::Dynamic)
        );
        // A policy cap: 2 GiB of RAM in a 256 MiB window.
        let capped = plan_window_capped(&qemu_query(0x107), 2 * GIB, 64, Some(28)).unwrap();
        assert_eq!(
            (capped.window_shift, capped.mode, capped.limit),
            (28, WindowMode::Dynamic, WindowLimit::Policy)
        );
        // The cap covers the 2 GiB present but not the 64 GiB hot-plug maximum: hybrid.
        let what =
            PlanFor { ram_top: 2 * GIB, ram_end: 64 * GIB, device_mask_bits: 64, max_window_shift: Some(33) };
        let hybrid = plan_window_for(&qemu_query(0x107), &what).unwrap();
        assert_eq!((hybrid.window_shift, hybrid.mode), (33, WindowMode::Hybrid { direct_end: 2 * GIB }));
        // Present RAM fills the whole capped window: no room above it, dynamic.
        let full = PlanFor { ram_top: 8 * GIB, ..what };
        assert_eq!(plan_window_for(&qemu_query(0x107), &full).unwrap().mode, WindowMode::Dynamic);
        // A cap above what RAM needs changes nothing.
        assert_eq!(
            plan_window_capped(&qemu_query(0x107), 2 * GIB, 64, Some(40)),
            plan_window(&qemu_query(0x107), 2 * GIB, 64)
        );
    }

    #[test]
    fn planning_errors() {
        assert_eq!(plan_window(&qemu_query(0), GIB, 64), Err(PlanError::NoPageSize { mask: 0 }));
        assert_eq!(plan_window(&qemu_query(0x107), 0, 64), Err(PlanError::NoRam));
        let empty = QueryResponse { largest_block: 0, ..qemu_query(0x107) };
        assert_eq!(plan_window(&empty, GIB, 64), Err(PlanError::NoTces));
        let err = plan_window(&qemu_query(0x107), GIB, 20).unwrap_err();
        assert_eq!(
            err,
            PlanError::WindowSmallerThanPage {
                page_shift: 24,
                window_shift: 20,
                limit: WindowLimit::DeviceMask
            }
        );
        assert_eq!(
            err.to_string(),
            "a DMA window of 2^20 bytes (DeviceMask limit) is smaller than one 2^24-byte I/O page"
        );
        let inconsistent = WindowPlan {
            page_shift: 30,
            window_shift: 12,
            mode: WindowMode::Direct,
            limit: WindowLimit::Ram,
        };
        assert_eq!(inconsistent.tce_count(), None);
    }
}
