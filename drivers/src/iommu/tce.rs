//! Translation Control Entries: the 64-bit values a DMA window's table holds.
//!
//! A TCE is the page-aligned guest-physical address of one I/O page with two permission bits
//! in its low end ([`papr_abi::tce`]: LoPAR "TCE Definition", Linux `asm/tce.h`). Facts relied
//! on:
//! - Linux `arch/powerpc/platforms/pseries/iommu.c : tce_build_pSeriesLP`: every mapping gets
//!   READ, plus WRITE unless the direction is to-device; direct windows use READ|WRITE.
//! - Linux `arch/powerpc/kernel/iommu.c : iommu_tce_check_gpa` (KVM): the RPN must be aligned
//!   to the window's I/O page size, else H_PARAMETER, so [`Tce::new`] refuses unaligned
//!   addresses.
//!
//! A [`Tce`] is a value to write; only this driver builds one from raw bits
//! (`Tce::from_raw` is private to the crate). What H_GET_TCE reads back is a [`ReadTce`]:
//! data to compare, never something to write.

use core::fmt;

use crate::addr::PhysAddr;
pub use papr_abi::tce::{MAX_TCES_PER_CALL, MIN_PAGE_SHIFT};
use papr_abi::tce::{TCE_NON_RPN_MASK, TCE_PERMISSION_MASK, TCE_READ, TCE_WRITE};

/// Largest I/O page shift this driver accepts (keeps `1 << shift` well inside `u64`).
pub const MAX_PAGE_SHIFT: u32 = 62;

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
            TcePermission::Read => TCE_READ,
            TcePermission::Write => TCE_WRITE,
            TcePermission::ReadWrite => TCE_READ | TCE_WRITE,
        }
    }

    /// Decodes the low two bits of a raw TCE.
    pub const fn from_tce_bits(raw: u64) -> Self {
        match (raw & TCE_READ != 0, raw & TCE_WRITE != 0) {
            (false, false) => TcePermission::None,
            (true, false) => TcePermission::Read,
            (false, true) => TcePermission::Write,
            (true, true) => TcePermission::ReadWrite,
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

    /// Wraps raw bits the driver computed itself (a run of consecutive pages).
    pub(crate) const fn from_raw(raw: u64) -> Tce {
        Tce(raw)
    }

    /// The raw 64-bit value.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The page address (the value without permission and reserved bits).
    pub const fn phys(self) -> PhysAddr {
        PhysAddr(self.0 & !TCE_NON_RPN_MASK)
    }

    /// The permission bits.
    pub const fn permission(self) -> TcePermission {
        TcePermission::from_tce_bits(self.0)
    }

    /// True for an entry that grants no access.
    pub const fn is_clear(self) -> bool {
        self.0 & TCE_PERMISSION_MASK == 0
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

/// An entry as H_GET_TCE read it back.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReadTce(pub u64);

impl ReadTce {
    /// Whether the entry holds exactly `tce`.
    pub const fn holds(self, tce: Tce) -> bool {
        self.0 == tce.0
    }

    /// True for an entry that grants no access.
    pub const fn is_clear(self) -> bool {
        self.0 & TCE_PERMISSION_MASK == 0
    }
}

impl fmt::Debug for ReadTce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReadTce({:#x})", self.0)
    }
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
    fn read_back_entries_compare_with_built_ones() {
        let tce = Tce::new(PhysAddr(0x2000), TcePermission::ReadWrite, 12).unwrap();
        assert!(ReadTce(0x2003).holds(tce));
        assert!(!ReadTce(0x2001).holds(tce));
        assert!(ReadTce(0x2000).is_clear() && !ReadTce(0x2002).is_clear());
    }
}
