//! Enabling a Dynamic DMA Window on one partitionable endpoint: query, plan, create, map.
//!
//! The sequence follows LoPAR (`sec_rtas_dma_window.xml`) and Linux `enable_ddw`
//! (../shared/docs/papr-ddw-facts.md §0, §1.4):
//! 1. `ibm,query-pe-dma-window` with 6 outputs when `ibm,ddw-extensions` entry 2 is 1, else 5;
//! 2. pick the largest offered I/O page size and a window covering the highest RAM address
//!    including hot-pluggable memory ([`plan_window`]);
//! 3. `ibm,create-pe-dma-window` (busy answers retried, [`create_window`]);
//! 4. a direct window gets every RAM range mapped at bus base + physical address
//!    ([`map_ram`]); a window capped below RAM becomes a dynamic (IOMMU-mapped) one.
//!
//! On any failure after the create, what was mapped is cleared and the window removed, so the
//! PE is left exactly as it was: on its default window. QEMU always answers one free window
//! (§2.3); a PE with none (single-window SR-IOV VFs) is reported, not handled here.

use core::fmt;

use super::dynamic::DynamicWindow;
use super::hcall::TceCalls;
use super::map::{map_ram, MapError, MapStats, MultiTce};
use super::plan::{plan_window, PlanError, WindowMode, WindowPlan};
use super::rtas::{DdwRtas, Delay, PeAddress, QueryOutputs, QueryResponse, RtasError};
use super::window::{create_window, CreateError, DmaWindow};
use crate::addr::PhysRange;
use crate::devtree::dma_window::DdwExtensions;

/// What the DDW setup of one PE needs to know.
#[derive(Clone, Copy, Debug)]
pub struct PeRequest<'a> {
    /// The PE's RTAS address.
    pub pe: PeAddress,
    /// `ibm,ddw-extensions` of the PE's node, if present.
    pub extensions: Option<&'a DdwExtensions>,
    /// System RAM ranges to map (the memory nodes; not assumed contiguous).
    pub ram: &'a [PhysRange],
    /// End of the highest address RAM may ever occupy, hot-pluggable memory included.
    pub ram_end: u64,
    /// Address bits of the devices the window is for (64 for the 64-bit window).
    pub device_mask_bits: u32,
    /// Whether H_PUT_TCE_INDIRECT / H_STUFF_TCE exist.
    pub multi_tce: MultiTce,
}

impl PeRequest<'_> {
    /// 6 outputs when the "64-bit query" extension says so, else 5.
    pub fn query_outputs(&self) -> QueryOutputs {
        if self.extensions.is_some_and(DdwExtensions::query_outputs_64bit) {
            QueryOutputs::Six
        } else {
            QueryOutputs::Five
        }
    }
}

/// A created window: direct (all RAM mapped) or dynamic (mapped buffer by buffer).
#[derive(Debug)]
pub enum DdwMapping {
    /// Bus address = bus base + physical address for all RAM.
    Direct,
    /// An IOVA allocator over the window.
    Dynamic(DynamicWindow),
}

/// A Dynamic DMA Window in place on a PE.
#[derive(Debug)]
pub struct Ddw {
    /// The query's answer.
    pub query: QueryResponse,
    /// Outputs the query was called with.
    pub outputs: QueryOutputs,
    /// The plan the window was created from.
    pub plan: WindowPlan,
    /// The window as created.
    pub window: DmaWindow,
    /// The table slot it occupies (1 next to the default window, 0 when it replaced it).
    pub slot: u32,
    /// Hypercalls spent mapping RAM (zero for a dynamic window).
    pub stats: MapStats,
    /// RAM ranges mapped.
    pub ranges: usize,
    /// Direct or dynamic.
    pub mapping: DdwMapping,
}

impl Ddw {
    /// The bus-address offset of a direct window (`None` for a dynamic one).
    pub fn direct_offset(&self) -> Option<u64> {
        match self.mapping {
            DdwMapping::Direct => Some(self.window.bus_base().get()),
            DdwMapping::Dynamic(_) => None,
        }
    }
}

/// Why a PE stays on its default window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DdwError {
    /// The query call failed.
    Query(RtasError),
    /// The query answered no free window (a single-window PE).
    NoWindowAvailable {
        /// The answer.
        query: QueryResponse,
    },
    /// The answer could not be turned into a window.
    Plan {
        /// The answer.
        query: QueryResponse,
        /// Why.
        error: PlanError,
    },
    /// The create call failed (nothing to undo, or the bad window was already removed).
    Create(CreateError),
    /// Mapping RAM failed; the mapped part was cleared and the window removed.
    Map {
        /// The window that was created.
        window: DmaWindow,
        /// The failing hcall (and any failure clearing).
        error: MapError,
        /// The remove call's failure, if it failed too.
        removal: Option<RtasError>,
    },
}

impl fmt::Display for DdwError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DdwError::Query(error) => write!(f, "{error}"),
            DdwError::NoWindowAvailable { query } => write!(
                f,
                "ibm,query-pe-dma-window reported 0 windows available (largest block {:#x} TCEs, page sizes \
                 {:#x}); removing the default window is not attempted",
                query.largest_block, query.page_size_mask
            ),
            DdwError::Plan { error, .. } => write!(f, "{error}"),
            DdwError::Create(error) => write!(f, "{error}"),
            DdwError::Map { window, error, removal } => {
                write!(f, "mapping RAM into the window (liobn {}) failed: {error}", window.liobn())?;
                match removal {
                    None => write!(f, "; the window was removed"),
                    Some(removal) => write!(f, "; removing the window failed too: {removal}"),
                }
            }
        }
    }
}

/// Queries, creates and (for a direct window) maps all RAM; on failure the PE is left on its
/// default window and the error names the failing call.
/// `hv` is the partition's hypervisor: RTAS and the TCE hcalls act on the same tables.
// The error carries every argument of the failing call for the report; it is returned once
// per PE at boot, so its size does not matter.
#[allow(clippy::result_large_err)]
pub fn enable_ddw(
    hv: &mut (impl DdwRtas + TceCalls),
    delay: &mut impl Delay,
    request: &PeRequest<'_>,
) -> Result<Ddw, DdwError> {
    let outputs = request.query_outputs();
    let query = hv.query(request.pe, outputs).map_err(DdwError::Query)?;
    if query.windows_available == 0 {
        return Err(DdwError::NoWindowAvailable { query });
    }
    let plan = plan_window(&query, request.ram_end, request.device_mask_bits)
        .map_err(|error| DdwError::Plan { query, error })?;
    let window = create_window(hv, delay, request.pe, &plan).map_err(DdwError::Create)?;
    let (stats, mapping) = match plan.mode {
        WindowMode::Direct => match map_ram(hv, &window, request.ram, request.multi_tce) {
            Ok(stats) => (stats, DdwMapping::Direct),
            Err(error) => {
                let removal = hv.remove(window.liobn()).err();
                return Err(DdwError::Map { window, error, removal });
            }
        },
        WindowMode::Dynamic => {
            (MapStats::default(), DdwMapping::Dynamic(DynamicWindow::new(window, request.multi_tce)))
        }
    };
    let ranges = match mapping {
        DdwMapping::Direct => request.ram.iter().filter(|r| r.size > 0).count(),
        DdwMapping::Dynamic(_) => 0,
    };
    Ok(Ddw { query, outputs, plan, window, slot: 1, stats, ranges, mapping })
}

#[cfg(test)]
#[path = "tests_ddw.rs"]
mod tests;
