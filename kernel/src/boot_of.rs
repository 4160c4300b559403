//! Booting under Open Firmware (SLOF or VOF): claim memory, instantiate RTAS, flatten the tree.
//!
//! Memory must be claimed through OF while firmware is alive; RTAS is instantiated with
//! `call-method "instantiate-rtas"` on an open `/rtas`, sized by its `rtas-size` property
//! (LoPAR "RTAS Environment"); there is no FDT in guest memory under VOF (and only a stale
//! one under SLOF), so the kernel walks the OF tree and flattens it, as Linux's
//! `arch/powerpc/kernel/prom_init.c` does.

use alloc::vec::Vec;
use arch_ppc64::of::{OfError, OpenFirmware, Phandle};
use drivers::devtree::error::DtError;
use drivers::devtree::of::{flatten, FlattenLimits, FlattenStats, OfTree};

use crate::boundary::firmware::{instantiate_rtas, RtasSetUpError};
use crate::boundary::memory::HEAP_SIZE;
use crate::boundary::rtas::Firmware;
use crate::image;

/// What the OF boot produced.
pub struct OfBoot {
    /// The flattened device tree.
    pub fdt: Vec<u8>,
    /// Walk statistics.
    pub stats: FlattenStats,
    /// How to call RTAS.
    pub firmware: Firmware,
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
    /// Instantiating RTAS failed.
    Rtas(RtasSetUpError),
    /// Flattening the tree failed.
    Flatten(DtError),
}

impl core::fmt::Display for OfBootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OfBootError::HeapClaim(e) => {
                write!(f, "OF claim of the {} MiB heap failed ({e:?})", HEAP_SIZE >> 20)
            }
            OfBootError::NoRtasNode => write!(f, "OF has no /rtas node with an rtas-size property"),
            OfBootError::Rtas(RtasSetUpError::Claim(e)) => {
                write!(f, "OF claim of memory for RTAS failed ({e:?})")
            }
            OfBootError::Rtas(RtasSetUpError::Open(e)) => write!(f, "OF open(\"/rtas\") failed ({e:?})"),
            OfBootError::Rtas(RtasSetUpError::Instantiate(e)) => {
                write!(f, "OF call-method instantiate-rtas failed ({e:?})")
            }
            OfBootError::Flatten(e) => write!(f, "flattening the OF device tree failed: {e}"),
        }
    }
}

/// The OF tree as `drivers::devtree::of::flatten` walks it.
struct OfWalk<'a>(&'a OpenFirmware);

impl OfTree for OfWalk<'_> {
    fn peer(&mut self, node: Phandle) -> Option<Phandle> {
        self.0.peer(node)
    }

    fn child(&mut self, node: Phandle) -> Option<Phandle> {
        self.0.child(node)
    }

    fn next_property(
        &mut self,
        node: Phandle,
        previous: &str,
        buf: &mut [u8; 64],
    ) -> Result<Option<usize>, DtError> {
        self.0.next_property(node, previous, buf).map_err(|e| match e {
            OfError::BadName => DtError::Malformed("property name too long"),
            _ => DtError::Malformed("OF nextprop failed"),
        })
    }

    fn property_length(&mut self, node: Phandle, name: &str) -> Option<usize> {
        self.0.property_length(node, name)
    }

    fn property(&mut self, node: Phandle, name: &str, buf: &mut [u8]) -> Option<usize> {
        self.0.property(node, name, buf)
    }

    fn path(&mut self, node: Phandle, buf: &mut [u8]) -> Option<usize> {
        self.0.path(node, buf)
    }
}

/// Instantiates RTAS and flattens the tree. After this the kernel no longer calls OF.
pub fn boot(of: &OpenFirmware) -> Result<OfBoot, OfBootError> {
    // Before the tree is read: QEMU updates it (`/chosen/ibm,architecture-vec-5`) after CAS.
    let cas = client_architecture_support(of);
    let rtas_node = of.find_device(b"/rtas").map_err(|_| OfBootError::NoRtasNode)?;
    let rtas_size = of.property_u32(rtas_node, b"rtas-size").ok_or(OfBootError::NoRtasNode)?;
    let rtas_size = (rtas_size + 0xfff) & !0xfff;
    let (firmware, rtas_region) = instantiate_rtas(of, rtas_size).map_err(OfBootError::Rtas)?;
    let (image_start, image_end) = image::bounds();
    let reservations = alloc::vec![(image_start, image_end - image_start), rtas_region];
    let (fdt, stats) =
        flatten(&mut OfWalk(of), &reservations, &FlattenLimits::default()).map_err(OfBootError::Flatten)?;
    Ok(OfBoot { fdt, stats, firmware, rtas_region, cas })
}

/// Asks for the radix MMU with guest TLB shootdown where the CPU has it (POWER9 and later),
/// else for hash (`drivers::mmu::cas`).
fn client_architecture_support(of: &OpenFirmware) -> Cas {
    let translation = drivers::mmu::cas::mmu_for_pvr(arch_ppc64::cpu::pvr());
    let buffer = drivers::mmu::cas::cas_buffer(translation);
    match (of.client_architecture_support(&buffer), translation) {
        (Ok(0), drivers::mmu::cas::CasMmu::Radix) => Cas::Radix,
        (Ok(0), drivers::mmu::cas::CasMmu::Hash) => Cas::Hash,
        _ => Cas::Failed,
    }
}
