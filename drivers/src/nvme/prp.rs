//! Physical Region Page entries for one command's data (Base Specification 2.0 §4.1.1,
//! "Physical Region Page Entry and List"): PRP1 points at the first byte (dword aligned, any
//! offset in its page); PRP2 is unused when the transfer stays in that page, is the second
//! page when it ends in the next one, and otherwise points at a PRP list whose entries are
//! the page addresses from the second page on. This driver never chains lists: one list page
//! (512 entries) is enough for [`MAX_TRANSFER`]. QEMU's reading of the same rules is
//! `hw/nvme/ctrl.c : nvme_map_prp`.
//!
//! Every address here is a bus address, as the device sees it (physical + the window's base
//! in direct mode, an IOVA in a TCE window): the caller maps the data first.

use alloc::vec::Vec;
use core::fmt;

use super::spec::PAGE;

/// Entries in one PRP list page.
pub const LIST_ENTRIES: u64 = PAGE / 8;
/// The largest transfer one command takes here: 512 pages, so that even a transfer that
/// does not start on a page boundary (513 pages) fits PRP1 and one list page.
pub const MAX_TRANSFER: u64 = LIST_ENTRIES * PAGE;

/// PRP1 and what PRP2 must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrpPlan {
    /// PRP entry 1: the first byte.
    pub prp1: u64,
    /// PRP entry 2.
    pub prp2: Prp2,
}

/// PRP entry 2's role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prp2 {
    /// The data stays in PRP1's page: PRP2 is reserved (0).
    Unused,
    /// The data ends in the next page: PRP2 is that page.
    Page(u64),
    /// PRP2 points at a list holding these page addresses, in order.
    List(Vec<u64>),
}

/// Why a transfer cannot be described.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrpError {
    /// Zero bytes.
    Empty,
    /// PRP1 must be dword aligned (§4.1.1: bits 1:0 are 0).
    Unaligned {
        /// The address given.
        bus: u64,
    },
    /// More than [`MAX_TRANSFER`] would need a chained list.
    TooLong {
        /// Bytes asked for.
        len: u64,
    },
    /// The range wraps the bus address space.
    Wraps,
}

impl fmt::Display for PrpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrpError::Empty => write!(f, "a transfer of zero bytes"),
            PrpError::Unaligned { bus } => write!(f, "data at bus address {bus:#x} is not dword aligned"),
            PrpError::TooLong { len } => {
                write!(f, "a transfer of {len:#x} bytes is longer than one PRP list page describes")
            }
            PrpError::Wraps => write!(f, "the data's bus range wraps"),
        }
    }
}

/// The PRP entries for `len` bytes at bus address `bus` (contiguous in bus space).
pub fn plan(bus: u64, len: u64) -> Result<PrpPlan, PrpError> {
    if len == 0 {
        return Err(PrpError::Empty);
    }
    if bus & 3 != 0 {
        return Err(PrpError::Unaligned { bus });
    }
    if len > MAX_TRANSFER {
        return Err(PrpError::TooLong { len });
    }
    let end = bus.checked_add(len).ok_or(PrpError::Wraps)?;
    let first_page = bus & !(PAGE - 1);
    let pages = (end - first_page).div_ceil(PAGE);
    let prp2 = match pages {
        1 => Prp2::Unused,
        2 => Prp2::Page(first_page + PAGE),
        _ => Prp2::List((1..pages).map(|k| first_page + k * PAGE).collect()),
    };
    Ok(PrpPlan { prp1: bus, prp2 })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 1 << 59;

    #[test]
    fn one_two_and_many_pages() {
        assert_eq!(plan(BASE, 512), Ok(PrpPlan { prp1: BASE, prp2: Prp2::Unused }));
        assert_eq!(plan(BASE + 0xe00, 0x200).unwrap().prp2, Prp2::Unused, "ends exactly at the page end");
        assert_eq!(plan(BASE + 0xe00, 0x400).unwrap().prp2, Prp2::Page(BASE + 0x1000));
        assert_eq!(plan(BASE, 0x2000).unwrap().prp2, Prp2::Page(BASE + 0x1000));
        let Prp2::List(list) = plan(BASE, 0x3000).unwrap().prp2 else { panic!("a list") };
        assert_eq!(list, [BASE + 0x1000, BASE + 0x2000]);
        // 1 MiB aligned: PRP1 plus 255 list entries.
        let Prp2::List(list) = plan(BASE + (1 << 30), 1 << 20).unwrap().prp2 else { panic!("a list") };
        assert_eq!(list.len(), 255);
        assert_eq!(list[254], BASE + (1 << 30) + 0xff000);
    }

    #[test]
    fn the_largest_transfer_fits_one_list_even_unaligned() {
        let Prp2::List(list) = plan(BASE + 0x800, MAX_TRANSFER).unwrap().prp2 else { panic!("a list") };
        assert_eq!(list.len() as u64, LIST_ENTRIES);
        assert_eq!(plan(BASE, MAX_TRANSFER + 1), Err(PrpError::TooLong { len: MAX_TRANSFER + 1 }));
        assert_eq!(plan(BASE + 2, 8), Err(PrpError::Unaligned { bus: BASE + 2 }));
        assert_eq!(plan(BASE, 0), Err(PrpError::Empty));
        assert_eq!(plan(u64::MAX - 3, 8), Err(PrpError::Wraps));
    }
}
