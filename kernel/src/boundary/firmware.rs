//! What firmware hands over, taken safely: the Open Firmware client interface (r5) and what
//! the kernel asks of it that writes memory (the heap claim, `instantiate-rtas`), or the
//! flattened device tree (r3, `-M pseries -bios image`) and RTAS through QEMU's `H_RTAS`.
//!
//! QEMU's FDT-direct path: no firmware runs, r3 holds the address of the (pre-CAS) FDT, which
//! already lists the RTAS tokens; RTAS is reached only through QEMU's private `H_RTAS`
//! hypercall (QEMU hw/ppc/spapr.c `spapr_machine_reset`, hw/ppc/spapr_hcall.c `h_rtas`).

use arch_ppc64::boot::{BootHandoff, EntryKind};
use arch_ppc64::of::{OfError, OpenFirmware};
use arch_ppc64::rtas::RtasMethod;

use super::memory::{init_heap, HEAP_SIZE};
use super::rtas::Firmware;
use crate::image;

/// The client interface SLOF or VOF handed over in r5, if they did.
pub fn open_firmware(handoff: &BootHandoff) -> Option<OpenFirmware> {
    match handoff.kind() {
        // SAFETY: a `BootHandoff` is built only from the entry registers, and r5 at entry is the
        // live client interface (IEEE 1275 client program entry, as SLOF and VOF enter).
        EntryKind::OpenFirmware { entry } => Some(unsafe { OpenFirmware::new(entry) }),
        _ => None,
    }
}

/// Claims the heap from Open Firmware and initialises the allocator. Must run before anything
/// allocates.
pub fn claim_heap(of: &OpenFirmware) -> Result<(), OfError> {
    let base = of.claim(0, HEAP_SIZE as u32, 1 << 20)?;
    // SAFETY: OF just gave this region to the kernel; nobody else will use it.
    unsafe { init_heap(u64::from(base), HEAP_SIZE) };
    Ok(())
}

/// Why RTAS could not be instantiated.
#[derive(Debug)]
pub enum RtasSetUpError {
    /// Claiming memory for it failed.
    Claim(OfError),
    /// `open("/rtas")` failed.
    Open(OfError),
    /// `instantiate-rtas` failed.
    Instantiate(OfError),
}

/// Claims `size` bytes for RTAS, instantiates it there and returns how to call it and the
/// region it occupies.
pub fn instantiate_rtas(of: &OpenFirmware, size: u32) -> Result<(Firmware, (u64, u64)), RtasSetUpError> {
    let base = of.claim(0, size, 0x1000).map_err(RtasSetUpError::Claim)?;
    let ihandle = of.open(b"/rtas").map_err(RtasSetUpError::Open)?;
    // SAFETY: `[base, base + size)` was claimed from OF for RTAS just above and is reserved
    // for it for good (the kernel reports it as firmware memory).
    let entry = unsafe { of.instantiate_rtas(ihandle, base) }.map_err(RtasSetUpError::Instantiate)?;
    let method = RtasMethod::Instantiated { base: u64::from(base), entry: u64::from(entry) };
    // SAFETY: base and entry come from the successful instantiate-rtas above.
    let firmware = unsafe { Firmware::new(method) };
    Ok((firmware, (u64::from(base), u64::from(size))))
}

/// RTAS on the FDT-direct path: QEMU's `H_RTAS`.
pub fn qemu_rtas(_fdt: &HandedOverFdt) -> Firmware {
    // SAFETY: a `HandedOverFdt` exists only on QEMU's `-bios` path (r3 = FDT, no firmware),
    // where QEMU implements H_RTAS.
    unsafe { Firmware::new(RtasMethod::QemuHcall) }
}

/// The FDT QEMU handed over in r3, checked; only [`handed_over_fdt`] makes one.
pub struct HandedOverFdt {
    addr: u64,
    blob: &'static [u8],
}

impl HandedOverFdt {
    /// Its physical address.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// The blob.
    pub fn blob(&self) -> &'static [u8] {
        self.blob
    }
}

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

/// The FDT handed over in r3 (`None` if the handoff was not QEMU's FDT-direct one).
pub fn handed_over_fdt(handoff: &BootHandoff) -> Option<Result<HandedOverFdt, FdtBootError>> {
    match handoff.kind() {
        EntryKind::FlattenedTree { fdt } => {
            // SAFETY: a `BootHandoff` is built only from the entry registers, and r3 on QEMU's
            // `-bios` path is the FDT it placed in RAM, never written again.
            Some(unsafe { fdt_blob(fdt) }.map(|blob| HandedOverFdt { addr: fdt, blob }))
        }
        _ => None,
    }
}

/// Borrows the FDT at physical address `addr` after checking its header.
///
/// # Safety
/// `addr` must be the FDT address QEMU passed in r3 (readable RAM, not modified later).
unsafe fn fdt_blob(addr: u64) -> Result<&'static [u8], FdtBootError> {
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
    let size = HEAP_SIZE;
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
    unsafe { init_heap(base, size) };
    Ok((base, size))
}

const fn align_up(value: u64, align: u64) -> u64 {
    (value + align - 1) & !(align - 1)
}
