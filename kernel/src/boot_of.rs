//! Booting under Open Firmware (SLOF or VOF): claim memory, instantiate RTAS, flatten the tree.
//!
//! Facts (../shared/docs/boot-facts.md): memory must be claimed through OF while firmware is
//! alive; RTAS is instantiated with `call-method "instantiate-rtas"` on an open `/rtas`, sized by
//! its `rtas-size` property; there is no FDT in guest memory under VOF (and only a stale one
//! under SLOF), so the kernel walks the OF tree and flattens it, as Linux's prom_init does.

use crate::{heap, image};
use alloc::vec::Vec;
use arch_ppc64::of::{OfError, OpenFirmware};
use arch_ppc64::rtas::RtasMethod;
use drivers::devtree::of::{flatten, FlattenLimits, FlattenStats};

/// What the OF boot produced.
pub struct OfBoot {
    /// The flattened device tree.
    pub fdt: Vec<u8>,
    /// Walk statistics.
    pub stats: FlattenStats,
    /// How to call RTAS.
    pub rtas: RtasMethod,
    /// RTAS region `(base, size)`.
    pub rtas_region: (u64, u64),
    /// What `ibm,client-architecture-support` asked for and how it went.
    pub cas: Cas,
}

/// The CAS step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cas {
    /// Radix (with GTSE) was asked for and accepted.
    Radix,
    /// The CPU has no radix MMU; hash was asked for and accepted.
    Hash,
    /// The call failed; the MMU stays as firmware left it.
    Failed,
}

/// A failure during the OF boot, named by the step.
#[derive(Debug)]
pub enum OfBootError {
    /// Claiming the heap failed.
    HeapClaim(OfError),
    /// `/rtas` is missing or has no `rtas-size`.
    NoRtasNode,
    /// Claiming memory for RTAS failed.
    RtasClaim(OfError),
    /// `open("/rtas")` failed.
    RtasOpen(OfError),
    /// `instantiate-rtas` failed.
    RtasInstantiate(OfError),
    /// Flattening the tree failed.
    Flatten(drivers::devtree::error::DtError),
}

impl core::fmt::Display for OfBootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OfBootError::HeapClaim(e) => {
                write!(f, "OF claim of the {} MiB heap failed ({e:?})", heap::HEAP_SIZE >> 20)
            }
            OfBootError::NoRtasNode => write!(f, "OF has no /rtas node with an rtas-size property"),
            OfBootError::RtasClaim(e) => write!(f, "OF claim of memory for RTAS failed ({e:?})"),
            OfBootError::RtasOpen(e) => write!(f, "OF open(\"/rtas\") failed ({e:?})"),
            OfBootError::RtasInstantiate(e) => write!(f, "OF call-method instantiate-rtas failed ({e:?})"),
            OfBootError::Flatten(e) => write!(f, "flattening the OF device tree failed: {e}"),
        }
    }
}

/// Claims the heap and initialises the allocator. Must run before anything allocates.
pub fn claim_heap(of: &OpenFirmware) -> Result<(), OfBootError> {
    let base = of.claim(0, heap::HEAP_SIZE as u32, 1 << 20).map_err(OfBootError::HeapClaim)?;
    // SAFETY: OF just gave us this region; nobody else will use it.
    unsafe { heap::init(u64::from(base), heap::HEAP_SIZE) };
    Ok(())
}

/// Instantiates RTAS and flattens the tree. After this the kernel no longer calls OF.
pub fn boot(of: &mut OpenFirmware) -> Result<OfBoot, OfBootError> {
    // Before the tree is read: QEMU updates it (`/chosen/ibm,architecture-vec-5`) after CAS.
    let cas = client_architecture_support(of);
    let rtas_node = of.find_device(b"/rtas").map_err(|_| OfBootError::NoRtasNode)?;
    let rtas_size = of.property_u32(rtas_node, b"rtas-size").ok_or(OfBootError::NoRtasNode)?;
    let rtas_size = (rtas_size + 0xfff) & !0xfff;
    let rtas_base = of.claim(0, rtas_size, 0x1000).map_err(OfBootError::RtasClaim)?;
    let ihandle = of.open(b"/rtas").map_err(OfBootError::RtasOpen)?;
    let entry = of.instantiate_rtas(ihandle, rtas_base).map_err(OfBootError::RtasInstantiate)?;

    let (image_start, image_end) = image::bounds();
    let reservations =
        alloc::vec![(image_start, image_end - image_start), (u64::from(rtas_base), u64::from(rtas_size))];
    let (fdt, stats) = flatten(of, &reservations, &FlattenLimits::default()).map_err(OfBootError::Flatten)?;
    Ok(OfBoot {
        fdt,
        stats,
        rtas: RtasMethod::Instantiated { base: u64::from(rtas_base), entry: u64::from(entry) },
        rtas_region: (u64::from(rtas_base), u64::from(rtas_size)),
        cas,
    })
}

/// Asks for the radix MMU with guest TLB shootdown where the CPU has it (POWER9 and later),
/// else for hash (`drivers::mmu::cas`).
fn client_architecture_support(of: &OpenFirmware) -> Cas {
    let radix = drivers::mmu::cas::pvr_has_radix(arch_ppc64::cpu::pvr());
    let buffer = drivers::mmu::cas::cas_buffer(radix);
    // The heap OF gave us lies below 4 GiB (claim returns 32-bit addresses).
    let Ok(addr) = u32::try_from(buffer.as_ptr() as usize) else { return Cas::Failed };
    match (of.client_architecture_support(addr), radix) {
        (Ok(0), true) => Cas::Radix,
        (Ok(0), false) => Cas::Hash,
        _ => Cas::Failed,
    }
}
