//! Big-endian cell reading: the one place raw property bytes become numbers.
//!
//! Device-tree property values are sequences of 32-bit big-endian "cells"; a 64-bit quantity is
//! two cells, most significant first, and how many cells an address or size takes is given by
//! `#address-cells` / `#size-cells` on the parent node (Devicetree Specification 0.4, §2.3.5;
//! IEEE 1275 "encode-int"). Strings are NUL-terminated, and a string list is several of them back
//! to back (§2.2.4). Everything here is bounds-checked and returns [`DtError`] instead of
//! panicking, so the parsers built on it can be fed any bytes a firmware hands over.
//!
//! The last section holds the few helpers that touch the `fdt` crate (0.1.5) itself: property
//! lookup and cell-count reading. `fdt`'s own `cell_sizes()` panics on a short `#address-cells`,
//! so this module reads those properties itself.

use alloc::vec::Vec;
use fdt::node::FdtNode;

use crate::devtree::error::DtError;

/// Size of one cell in bytes.
pub const CELL_BYTES: usize = 4;

/// A cursor over a property value made of big-endian 32-bit cells.
#[derive(Clone, Debug)]
pub struct CellReader<'a> {
    prop: &'static str,
    rest: &'a [u8],
    total_len: usize,
}

impl<'a> CellReader<'a> {
    /// Starts reading `bytes`, the value of property `prop` (named in errors). Fails unless the
    /// length is a whole number of cells.
    pub fn new(prop: &'static str, bytes: &'a [u8]) -> Result<Self, DtError> {
        if !bytes.len().is_multiple_of(CELL_BYTES) {
            return Err(DtError::BadLength {
                prop,
                len: bytes.len(),
                expected: "a multiple of 4 bytes (whole cells)",
            });
        }
        Ok(Self { prop, rest: bytes, total_len: bytes.len() })
    }

    /// Reads one cell.
    pub fn read_u32(&mut self) -> Result<u32, DtError> {
        let (head, tail) = self.rest.split_first_chunk::<CELL_BYTES>().ok_or(DtError::BadLength {
            prop: self.prop,
            len: self.total_len,
            expected: "more cells than are present",
        })?;
        self.rest = tail;
        Ok(u32::from_be_bytes(*head))
    }

    /// Reads two cells as one 64-bit number, high cell first.
    pub fn read_u64(&mut self) -> Result<u64, DtError> {
        self.read_cells(2)
    }

    /// Reads a number that takes `count` cells. Only 1 and 2 fit in a `u64`; any other count is an
    /// error (nothing is consumed then).
    pub fn read_cells(&mut self, count: u32) -> Result<u64, DtError> {
        match count {
            1 => self.read_u32().map(u64::from),
            2 => {
                if self.remaining_cells() < 2 {
                    return Err(DtError::BadLength {
                        prop: self.prop,
                        len: self.total_len,
                        expected: "more cells than are present",
                    });
                }
                let high = self.read_u32()?;
                let low = self.read_u32()?;
                Ok((u64::from(high) << 32) | u64::from(low))
            }
            _ => Err(DtError::BadValue {
                prop: self.prop,
                why: "a number must take 1 or 2 cells to fit in 64 bits",
            }),
        }
    }

    /// Skips `count` cells (reserved fields).
    pub fn skip_cells(&mut self, count: usize) -> Result<(), DtError> {
        let bytes =
            count.checked_mul(CELL_BYTES).filter(|n| *n <= self.rest.len()).ok_or(DtError::BadLength {
                prop: self.prop,
                len: self.total_len,
                expected: "more cells than are present",
            })?;
        self.rest = self.rest.get(bytes..).unwrap_or_default();
        Ok(())
    }

    /// Cells not read yet.
    pub fn remaining_cells(&self) -> usize {
        self.rest.len() / CELL_BYTES
    }

    /// True once every cell has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

/// Checks that a `#address-cells` / `#size-cells` style count lets a value fit in 64 bits.
pub fn check_cell_count(prop: &'static str, count: u32) -> Result<(), DtError> {
    match count {
        1 | 2 => Ok(()),
        _ => Err(DtError::BadValue { prop, why: "cell count must be 1 or 2 to fit in 64 bits" }),
    }
}

/// Checks that a property holds whole entries of `entry_cells` cells each and returns how many.
pub fn entry_count(prop: &'static str, bytes: &[u8], entry_cells: usize) -> Result<usize, DtError> {
    let entry_bytes = entry_cells
        .checked_mul(CELL_BYTES)
        .filter(|n| *n > 0)
        .ok_or(DtError::BadValue { prop, why: "entry size in cells is zero or too large" })?;
    if !bytes.len().is_multiple_of(entry_bytes) {
        return Err(DtError::BadLength { prop, len: bytes.len(), expected: "a whole number of entries" });
    }
    Ok(bytes.len() / entry_bytes)
}

/// A property that is exactly one cell.
pub fn be_u32(prop: &'static str, bytes: &[u8]) -> Result<u32, DtError> {
    let cell: [u8; CELL_BYTES] = bytes.try_into().map_err(|_| DtError::BadLength {
        prop,
        len: bytes.len(),
        expected: "exactly 4 bytes (one cell)",
    })?;
    Ok(u32::from_be_bytes(cell))
}

/// A property that is either one cell or two cells (as `timebase-frequency` may be).
pub fn be_u32_or_u64(prop: &'static str, bytes: &[u8]) -> Result<u64, DtError> {
    match bytes.len() {
        4 | 8 => {
            let mut reader = CellReader::new(prop, bytes)?;
            reader.read_cells((bytes.len() / CELL_BYTES) as u32)
        }
        len => Err(DtError::BadLength { prop, len, expected: "4 or 8 bytes (one or two cells)" }),
    }
}

/// Splits a NUL-separated string list. Empty entries and entries that are not valid UTF-8 are
/// skipped, so a trailing NUL (or a missing one) makes no difference.
pub fn string_list(bytes: &[u8]) -> Vec<&str> {
    bytes.split(|b| *b == 0).filter(|s| !s.is_empty()).filter_map(|s| core::str::from_utf8(s).ok()).collect()
}

/// A property holding one string. Trailing NULs are trimmed (a missing terminator is tolerated);
/// an embedded NUL or invalid UTF-8 is an error.
pub fn single_string<'a>(prop: &'static str, bytes: &'a [u8]) -> Result<&'a str, DtError> {
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let trimmed = bytes.get(..end).unwrap_or_default();
    if trimmed.contains(&0) {
        return Err(DtError::BadValue { prop, why: "holds more than one string" });
    }
    core::str::from_utf8(trimmed).map_err(|_| DtError::BadValue { prop, why: "not valid UTF-8" })
}

// ---------------------------------------------------------------------------------------------
// Helpers over the `fdt` crate.

/// `#address-cells` and `#size-cells` of a node (they describe its children's `reg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellCounts {
    /// Cells per child address.
    pub address: u32,
    /// Cells per child size.
    pub size: u32,
}

impl CellCounts {
    /// What to assume on a pseries root that lacks the properties. The Devicetree Specification
    /// default is 2/1, but QEMU `spapr_build_fdt` always writes 2/2 and every pseries address and
    /// size is 64-bit, so 2/2 is the useful fallback here.
    pub const PSERIES_ROOT: CellCounts = CellCounts { address: 2, size: 2 };
}

/// The raw value of property `name` on `node`, if present.
pub fn prop<'a>(node: FdtNode<'_, 'a>, name: &str) -> Option<&'a [u8]> {
    node.property(name).map(|p| p.value)
}

/// Reads `#address-cells` / `#size-cells` of `node`, taking `default` for any that is missing.
pub fn cell_counts(node: FdtNode<'_, '_>, default: CellCounts) -> Result<CellCounts, DtError> {
    let address = match prop(node, "#address-cells") {
        Some(bytes) => be_u32("#address-cells", bytes)?,
        None => default.address,
    };
    let size = match prop(node, "#size-cells") {
        Some(bytes) => be_u32("#size-cells", bytes)?,
        None => default.size,
    };
    Ok(CellCounts { address, size })
}

/// True if `node` has a `device_type` property equal to `wanted`.
pub fn has_device_type(node: FdtNode<'_, '_>, wanted: &str) -> bool {
    prop(node, "device_type").and_then(|b| single_string("device_type", b).ok()) == Some(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reads_u32_u64_and_cells() {
        let bytes = [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff];
        let mut r = CellReader::new("p", &bytes).unwrap();
        assert_eq!(r.remaining_cells(), 4);
        assert_eq!(r.read_u32(), Ok(1));
        assert_eq!(r.read_u64(), Ok(0x2_0000_0003));
        assert_eq!(r.read_cells(1), Ok(0xffff_ffff));
        assert!(r.is_empty());
        assert!(r.read_u32().is_err());
    }

    #[test]
    fn reader_rejects_misaligned_and_bad_counts() {
        assert!(matches!(CellReader::new("p", &[0; 7]), Err(DtError::BadLength { len: 7, .. })));
        let mut r = CellReader::new("p", &[0; 12]).unwrap();
        assert!(r.read_cells(0).is_err());
        assert!(r.read_cells(3).is_err());
        assert_eq!(r.remaining_cells(), 3);
        r.skip_cells(2).unwrap();
        // One cell left: a two-cell read fails and consumes nothing.
        assert!(r.read_u64().is_err());
        assert_eq!(r.remaining_cells(), 1);
        assert!(r.skip_cells(2).is_err());
        assert!(r.skip_cells(usize::MAX).is_err());
    }

    #[test]
    fn fixed_size_helpers() {
        assert_eq!(be_u32("p", &[0, 0, 0x20, 0x03]), Ok(0x2003));
        assert!(be_u32("p", &[0, 0, 0x20]).is_err());
        assert!(be_u32("p", &[0; 8]).is_err());
        assert_eq!(be_u32_or_u64("p", &[0x1e, 0x84, 0x80, 0x00]), Ok(512_000_000));
        assert_eq!(be_u32_or_u64("p", &[0, 0, 0, 1, 0, 0, 0, 0]), Ok(1 << 32));
        assert!(be_u32_or_u64("p", &[0; 12]).is_err());
        assert!(be_u32_or_u64("p", &[0; 6]).is_err());
        assert_eq!(entry_count("p", &[0; 28], 7), Ok(1));
        assert!(entry_count("p", &[0; 24], 7).is_err());
        assert!(entry_count("p", &[0; 24], 0).is_err());
        assert!(check_cell_count("p", 3).is_err());
    }

    #[test]
    fn strings() {
        assert_eq!(string_list(b"hcall-tce\0hcall-multi-tce\0"), ["hcall-tce", "hcall-multi-tce"]);
        assert_eq!(string_list(b"a\0\xff\xfe\0b"), ["a", "b"]);
        assert!(string_list(b"").is_empty());
        assert_eq!(single_string("p", b"console=hvc0\0"), Ok("console=hvc0"));
        assert_eq!(single_string("p", b"no-terminator"), Ok("no-terminator"));
        assert_eq!(single_string("p", b"\0\0"), Ok(""));
        assert!(single_string("p", b"two\0strings\0").is_err());
        assert!(single_string("p", b"\xff\0").is_err());
    }
}
