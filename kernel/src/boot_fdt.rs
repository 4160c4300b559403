//! Booting with a flattened device tree handed over in r3 (`-M pseries -bios image`).
//!
//! QEMU's FDT-direct path: no firmware runs, r3 holds the address of the (pre-CAS) FDT, which
//! already lists the RTAS tokens; RTAS is reached only through QEMU's private `H_RTAS`
//! hypercall (../shared/docs/boot-facts.md, entry-state table).

use crate::{heap, image};

/// Largest FDT accepted (QEMU's FDT_MAX_SIZE is 1 MiB; leave headroom).
const MAX_FDT_SIZE: usize = 16 << 20;
/// FDT header magic.
const FDT_MAGIC: u32 = 0xd00d_feed;

/// Why the handed-over FDT cannot be used.
#[derive(Debug)]
pub enum FdtBootError {
    /// The header magic is wrong.
    BadMagic(u32),
    /// `totalsize` is smaller than a header or larger than [`MAX_FDT_SIZE`].
    BadSize(u32),
    /// The `fdt` crate rejected the blob.
    Parse(fdt::FdtError),
    /// No heap placement avoids the image, the FDT and the reserved ranges.
    NoHeapRoom,
}

impl core::fmt::Display for FdtBootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FdtBootError::BadMagic(m) => write!(f, "bad FDT magic {m:#x} (expected {FDT_MAGIC:#x})"),
            FdtBootError::BadSize(n) => write!(f, "FDT totalsize {n} is outside 40..={MAX_FDT_SIZE}"),
            FdtBootError::Parse(e) => write!(f, "the fdt crate rejected the blob: {e:?}"),
            FdtBootError::NoHeapRoom => {
                write!(f, "no heap placement avoids the kernel, the FDT and its reservations")
            }
        }
    }
}

/// Borrows the FDT at physical address `addr` after checking its header.
///
/// # Safety
/// `addr` must be the FDT address QEMU passed in r3 (readable RAM, not modified later).
pub unsafe fn fdt_blob(addr: u64) -> Result<&'static [u8], FdtBootError> {
    // SAFETY: the FDT header (at least 8 bytes) is readable at `addr` (caller contract).
    let header: [u8; 8] = unsafe { core::ptr::read_unaligned(addr as *const [u8; 8]) };
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if magic != FDT_MAGIC {
        return Err(FdtBootError::BadMagic(magic));
    }
    if size < 40 || size as usize > MAX_FDT_SIZE {
        return Err(FdtBootError::BadSize(size));
    }
    // SAFETY: the header says the blob is `size` bytes long and QEMU placed all of it in RAM;
    // nothing writes to it afterwards.
    Ok(unsafe { core::slice::from_raw_parts(addr as *const u8, size as usize) })
}

/// Picks a heap region after the kernel image that avoids the FDT and every reserved range,
/// then initialises the allocator with it.
pub fn place_heap(blob: &'static [u8]) -> Result<(u64, u64), FdtBootError> {
    let fdt = fdt::Fdt::new(blob).map_err(FdtBootError::Parse)?;
    let fdt_range = (blob.as_ptr() as u64, blob.len() as u64);
    let (_, image_end) = image::bounds();
    let mut base = align_up(image_end, 1 << 20);
    let size = heap::HEAP_SIZE;
    let mut moved = true;
    let mut rounds = 0;
    while moved {
        moved = false;
        rounds += 1;
        if rounds > 64 {
            return Err(FdtBootError::NoHeapRoom);
        }
        let reserved = fdt.memory_reservations().map(|r| (r.address() as u64, r.size() as u64));
        for (start, len) in core::iter::once(fdt_range).chain(reserved) {
            if start < base + size && base < start.saturating_add(len) {
                base = align_up(start.saturating_add(len), 1 << 20);
                moved = true;
            }
        }
    }
    // SAFETY: the region lies after the kernel image and overlaps neither the FDT nor any
    // reserved range; no firmware is running that could own it.
    unsafe { heap::init(base, size) };
    Ok((base, size))
}

const fn align_up(value: u64, align: u64) -> u64 {
    (value + align - 1) & !(align - 1)
}
