//! The Translation Control Entry format and the limits of the TCE hypercalls.
//!
//! LoPAR "TCE Definition": a TCE is the page-aligned guest-physical address of one I/O page
//! (the real page number in the high bits), bits 2–11 (LSB numbering) reserved, bit 0 = the
//! device may read memory, bit 1 = the device may write it; both clear = no access (Linux
//! `asm/tce.h`: `TCE_PCI_READ` 0x1, `TCE_PCI_WRITE` 0x2). H_PUT_TCE_INDIRECT reads at most 512
//! big-endian TCEs from one 4 KiB page and H_STUFF_TCE writes at most 512 entries (LoPAR
//! "H_PUT_TCE_INDIRECT", "H_STUFF_TCE"; QEMU `h_put_tce_indirect` checks the 512).

/// TCE bit 0: the device may read the page.
pub const TCE_READ: u64 = 1 << 0;
/// TCE bit 1: the device may write the page.
pub const TCE_WRITE: u64 = 1 << 1;
/// The two permission bits.
pub const TCE_PERMISSION_MASK: u64 = TCE_READ | TCE_WRITE;
/// Smallest I/O page shift (4 KiB); LoPAR: page shifts 0–11 are invalid.
pub const MIN_PAGE_SHIFT: u32 = 12;
/// The bits of a TCE below the smallest page that are not part of the page number.
pub const TCE_NON_RPN_MASK: u64 = (1 << MIN_PAGE_SHIFT) - 1;
/// At most this many TCEs go into one H_PUT_TCE_INDIRECT or H_STUFF_TCE call.
pub const MAX_TCES_PER_CALL: usize = 512;
/// Size of the TCE list page H_PUT_TCE_INDIRECT reads (4 KiB, 4 KiB aligned).
pub const TCE_LIST_BYTES: usize = 4096;

const _: () = assert!(MAX_TCES_PER_CALL * 8 == TCE_LIST_BYTES);
