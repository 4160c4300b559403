//! Translation Control Entries: the 64-bit values a DMA window's table holds.
//!
//! A TCE is the page-aligned guest-physical address of one I/O page with two permission bits
//! in its low end. Facts relied on (../shared/docs/papr-ddw-facts.md):
//! - LoPAR `ch_address_map.xml` "TCE Definition" (§3): RPN in the high bits, bits 2–11 (LSB
//!   numbering) reserved, bit 0 = device may read memory, bit 1 = device may write memory;
//!   00 = page fault (no access). Linux `asm/tce.h`: `TCE_PCI_READ` 0x1, `TCE_PCI_WRITE` 0x2 (§1.6).
//! - Linux `iommu.c : tce_build_pSeriesLP` (§1.6): every mapping gets READ, plus WRITE unless
//!   the direction is to-device; direct windows use READ|WRITE.
//! - KVM `iommu_tce_check_gpa` (§2.4): the RPN must be aligned to the window's I/O page size,
//!   else H_PARAMETER, so [`Tce::new`] refuses unaligned addresses.
//! - H_PUT_TCE_INDIRECT / H_STUFF_TCE take at most 512 TCEs, one 4 KiB page of big-endian u64s
//!   (LoPAR `ch_lpar_option.xml`, §3; QEMU/KVM enforce it for indirect, §2.4).

use core::fmt;

use crate::addr::PhysAddr;

/// At most this many TCEs go into one H_PUT_TCE_INDIRECT or H_STUFF_TCE call.
pub const MAX_TCES_PER_CALL: usize = 512;

/// Size of the TCE list page handed to H_PUT_TCE_INDIRECT.
pub const TCE_LIST_BYTES: usize = 4096;

/// Smallest I/O page shift (4 KiB); LoPAR: "Values of n from 0-11 are invalid".
pub const MIN_PAGE_SHIFT: u32 = 12;

/// Largest I/O page shift this driver accepts (keeps `1 << shift` well inside `u64`).
pub const MAX_PAGE_SHIFT: u32 = 62;

/// Bits of a TCE that are not part of the real page number.
const NON_RPN_BITS: u64 = (1 << MIN_PAGE_SHIFT) - 1;

/// What a device may do with the page a TCE maps (the low two bits of the TCE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcePermission {
    /// No access: the entry is invalid and a DMA to it faults.
    None,
    /// The device may read memory (TCE bit 0).
    Read,
    /// The device may write memory (TCE bit 1).
    Write,
    /// The device may read and write memory.
    ReadWrite,
}

impl TcePermission {
    /// The permission as the low two TCE bits.
    pub const fn bits(self) -> u64 {
        match self {
            TcePermission::None => 0,
            TcePermission::Read => 1,
            TcePermission::Write => 2,
            TcePermission::ReadWrite => 3,
        }
    }

    /// Decodes the low two bits of a raw TCE.
    pub const fn from_tce_bits(raw: u64) -> Self {
        match raw & 3 {
            0 => TcePermission::None,
            1 => TcePermission::Read,
            2 => TcePermission::Write,
            _ => TcePermission::ReadWrite,
        }
    }
}

/// Which way data moves in a DMA transfer, from the device's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DmaDirection {
    /// Memory to device: the device only reads memory.
    ToDevice,
    /// Device to memory: the device writes memory.
    FromDevice,
    /// Both ways.
    Bidirectional,
}

impl DmaDirection {
    /// The TCE permission for this direction. As in Linux `tce_build_pSeriesLP`, read is always
    /// granted and write is added unless the transfer is to the device, so `FromDevice` maps
    /// read/write (no platform needs write-only TCEs, and some device models read back).
    pub const fn permission(self) -> TcePermission {
        match self {
            DmaDirection::ToDevice => TcePermission::Read,
            DmaDirection::FromDevice | DmaDirection::Bidirectional => TcePermission::ReadWrite,
        }
    }
}

/// Why a TCE (or a TCE list) could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TceError {
    /// The I/O page shift is outside 12..=62.
    BadPageShift {
        /// The rejected shift.
        page_shift: u32,
    },
    /// The physical address is not a multiple of the I/O page size.
    Misaligned {
        /// The rejected address.
        phys: PhysAddr,
        /// The window's I/O page shift.
        page_shift: u32,
    },
    /// More TCEs than fit one 4 KiB list page.
    ListTooLong {
        /// Number of TCEs offered.
        count: usize,
    },
}

impl fmt::Display for TceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TceError::BadPageShift { page_shift } => {
                write!(f, "I/O page shift {page_shift} is outside {MIN_PAGE_SHIFT}..={MAX_PAGE_SHIFT}")
            }
            TceError::Misaligned { phys, page_shift } => write!(
                f,
                "physical address {phys} is not aligned to the {:#x}-byte I/O page",
                1u64 << page_shift
            ),
            TceError::ListTooLong { count } => {
                write!(f, "{count} TCEs do not fit one list page (at most {MAX_TCES_PER_CALL})")
            }
        }
    }
}

/// Checks that an I/O page shift is usable and returns the page size.
pub fn page_size_of(page_shift: u32) -> Result<u64, TceError> {
    if (MIN_PAGE_SHIFT..=MAX_PAGE_SHIFT).contains(&page_shift) {
        Ok(1u64 << page_shift)
    } else {
        Err(TceError::BadPageShift { page_shift })
    }
}

/// One translation control entry as stored in a window's table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tce(u64);

impl Tce {
    /// The empty entry: no page, no access.
    pub const CLEAR: Tce = Tce(0);

    /// A TCE mapping the I/O page at `phys` (aligned to `1 << page_shift`) with `permission`.
    pub fn new(phys: PhysAddr, permission: TcePermission, page_shift: u32) -> Result<Tce, TceError> {
        let page_size = page_size_of(page_shift)?;
        if !phys.is_aligned(page_size) {
            return Err(TceError::Misaligned { phys, page_shift });
        }
        Ok(Tce(phys.get() | permission.bits()))
    }

    /// Wraps a raw value read back from the hypervisor (H_GET_TCE) or a table.
    pub const fn from_raw(raw: u64) -> Tce {
        Tce(raw)
    }

    /// The raw 64-bit value.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The page address (the value without permission and reserved bits).
    pub const fn phys(self) -> PhysAddr {
        PhysAddr(self.0 & !NON_RPN_BITS)
    }

    /// The permission bits.
    pub const fn permission(self) -> TcePermission {
        TcePermission::from_tce_bits(self.0)
    }

    /// True for an entry that grants no access.
    pub const fn is_clear(self) -> bool {
        self.0 & 3 == 0
    }

    /// The big-endian bytes H_PUT_TCE_INDIRECT reads from its list page.
    pub const fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

impl fmt::Debug for Tce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tce({:#x})", self.0)
    }
}

impl fmt::Display for Tce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Writes `tces` as big-endian u64s at the start of a list page (the rest is left as it was)
/// and returns the count to pass to H_PUT_TCE_INDIRECT.
pub fn encode_tce_list(tces: &[Tce], page: &mut [u8; TCE_LIST_BYTES]) -> Result<u64, TceError> {
    if tces.len() > MAX_TCES_PER_CALL {
        return Err(TceError::ListTooLong { count: tces.len() });
    }
    for (slot, tce) in page.chunks_exact_mut(8).zip(tces) {
        slot.copy_from_slice(&tce.to_be_bytes());
    }
    Ok(tces.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tce_packs_address_and_permission() {
        let tce = Tce::new(PhysAddr(0x100_0000), TcePermission::ReadWrite, 24).unwrap();
        assert_eq!(tce.raw(), 0x100_0003);
        assert_eq!(tce.phys(), PhysAddr(0x100_0000));
        assert_eq!(tce.permission(), TcePermission::ReadWrite);
        assert!(!tce.is_clear());
        assert_eq!(tce.to_be_bytes(), [0, 0, 0, 0, 0x01, 0, 0, 0x03]);
        let read_only = Tce::new(PhysAddr(0x3000), DmaDirection::ToDevice.permission(), 12).unwrap();
        assert_eq!(read_only.raw(), 0x3001);
        assert!(Tce::CLEAR.is_clear());
        assert_eq!(Tce::from_raw(0x5002).permission(), TcePermission::Write);
    }

    #[test]
    fn tce_rejects_unaligned_address_and_bad_shift() {
        // 4 KiB aligned but not 16 MiB aligned: KVM would answer H_PARAMETER.
        let err = Tce::new(PhysAddr(0x1000), TcePermission::Read, 24).unwrap_err();
        assert_eq!(err, TceError::Misaligned { phys: PhysAddr(0x1000), page_shift: 24 });
        assert_eq!(err.to_string(), "physical address 0x1000 is not aligned to the 0x1000000-byte I/O page");
        assert_eq!(
            Tce::new(PhysAddr(0), TcePermission::Read, 11),
            Err(TceError::BadPageShift { page_shift: 11 })
        );
        assert!(Tce::new(PhysAddr(0), TcePermission::Read, 64).is_err());
    }

    #[test]
    fn direction_to_permission() {
        assert_eq!(DmaDirection::ToDevice.permission().bits(), 1);
        assert_eq!(DmaDirection::FromDevice.permission().bits(), 3);
        assert_eq!(DmaDirection::Bidirectional.permission().bits(), 3);
        assert_eq!(TcePermission::from_tce_bits(0x1000), TcePermission::None);
    }

    #[test]
    fn tce_list_is_big_endian_and_bounded() {
        let mut page = [0xaa; TCE_LIST_BYTES];
        let tces = [Tce::from_raw(0x1003), Tce::from_raw(0x0102_0304_0506_0708)];
        assert_eq!(encode_tce_list(&tces, &mut page), Ok(2));
        assert_eq!(page[..8], [0, 0, 0, 0, 0, 0, 0x10, 0x03]);
        assert_eq!(page[8..16], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(page[16], 0xaa);
        let too_many = [Tce::CLEAR; MAX_TCES_PER_CALL + 1];
        assert_eq!(encode_tce_list(&too_many, &mut page), Err(TceError::ListTooLong { count: 513 }));
    }
}
