//! The PAPR constants and encodings the model needs, written down here from LoPAR and QEMU
//! — not taken from the driver under test, so that a wrong value in the driver disagrees
//! with the model instead of being agreed with.
//!
//! Sources: LoPAR ("ibm,query-pe-dma-window" page-size table, "TCE Definition",
//! "H_PUT_TCE_INDIRECT", "H_STUFF_TCE", the RTAS status tables), QEMU 7.2
//! `hw/ppc/spapr_rtas_ddw.c` (`spapr_page_mask_to_query_mask`, the uint32 TCE count of
//! `rtas_ibm_create_pe_dma_window`), `hw/ppc/spapr_iommu.c` (the hcalls' checks) and Linux
//! `arch/powerpc/include/asm/hvcall.h` (status values).

/// The query's page-size mask bit for each I/O page shift, as QEMU's
/// `spapr_page_mask_to_query_mask` builds it: 4K bit 0, 64K bit 1, 16M bit 2, 32M bit 3,
/// 64M bit 4, 128M bit 5, 256M bit 6, 16G bit 7, and 2M bit 8 (added after LoPAR 2.9,
/// "RTAS_DDW_PGSIZE_2M 0x100").
pub const QUERY_PAGE_SIZES: [(u32, u32); 9] = [
    (12, 0x001),
    (16, 0x002),
    (24, 0x004),
    (25, 0x008),
    (26, 0x010),
    (27, 0x020),
    (28, 0x040),
    (34, 0x080),
    (21, 0x100),
];

/// The query mask bit of an I/O page shift, if the query can offer it.
pub fn query_bit(page_shift: u32) -> Option<u32> {
    QUERY_PAGE_SIZES.iter().find(|&&(shift, _)| shift == page_shift).map(|&(_, bit)| bit)
}

/// QEMU keeps a window's TCE count in a uint32 (`1 << (window_shift - page_shift)`): 2^31 is
/// the most that works.
pub const MAX_TCE_COUNT_SHIFT: u32 = 31;

/// H_PUT_TCE_INDIRECT reads at most 512 TCEs (one 4 KiB page); H_STUFF_TCE writes at most
/// 512 on PAPR platforms.
pub const TCES_PER_CALL: usize = 512;

/// TCE bit 0: the device may read the page; bit 1: it may write it.
pub const TCE_READ: u64 = 1;
/// See [`TCE_READ`].
pub const TCE_WRITE: u64 = 2;

/// Hcall statuses (Linux `asm/hvcall.h`).
pub mod hcall {
    /// H_HARDWARE.
    pub const H_HARDWARE: i64 = -1;
    /// H_PARAMETER.
    pub const H_PARAMETER: i64 = -4;
    /// H_NOT_ENOUGH_RESOURCES.
    pub const H_NOT_ENOUGH_RESOURCES: i64 = -44;
    /// H_P4 (the fourth parameter).
    pub const H_P4: i64 = -57;
}

/// RTAS statuses (LoPAR).
pub mod rtas {
    /// Hardware error.
    pub const HARDWARE_ERROR: i32 = -1;
    /// Busy.
    pub const BUSY: i32 = -2;
    /// Parameter error.
    pub const PARAMETER_ERROR: i32 = -3;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bit_is_used_once() {
        let mut bits: Vec<u32> = QUERY_PAGE_SIZES.iter().map(|&(_, bit)| bit).collect();
        bits.sort_unstable();
        bits.dedup();
        assert_eq!(bits.len(), QUERY_PAGE_SIZES.len());
        assert!(bits.iter().all(|b| b.is_power_of_two()));
        assert_eq!(query_bit(21), Some(0x100));
        assert_eq!(query_bit(13), None);
    }
}
