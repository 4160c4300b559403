//! The Dynamic DMA Window RTAS calls as a trait, their results and errors.
//!
//! [`DdwRtas`] is implemented over `rtas_call` by the kernel and by the hypervisor model in
//! tests; one trait call is one RTAS call (retrying is the planner's job). Facts relied on
//! (LoPAR "ibm,query-pe-dma-window", "ibm,create-pe-dma-window", "ibm,remove-pe-dma-window",
//! "ibm,reset-pe-dma-windows"; Linux `arch/powerpc/platforms/pseries/iommu.c : query_ddw,
//! create_ddw`; QEMU `hw/ppc/spapr_rtas_ddw.c`):
//! - query: in = config_addr, BUID hi, BUID lo; 5 outputs (status, windows available,
//!   largest block, page-size mask, migration mask) or 6 (largest block as hi, lo) when
//!   `ibm,ddw-extensions` entry 2 is 1 (LoPAR `sec_rtas_dma_window.xml`, Linux `query_ddw`);
//! - create: in = config_addr, BUID hi, BUID lo, page shift, window shift; out = status,
//!   LIOBN, bus address hi, lo. −2 is busy and 9900–9905 ask to wait 10^(s−9900) ms
//!   (Linux `arch/powerpc/kernel/rtas.c : rtas_busy_delay`, clamped to 1..1000 ms);
//! - remove: in = LIOBN; reset (`ibm,reset-pe-dma-windows`): in = config_addr, BUID hi, lo;
//! - RTAS statuses: 0 success, −1 hardware error, −2 busy, −3 parameter error.

use core::fmt;

use crate::addr::{BusAddr, Liobn};
use papr_abi::rtas::RtasStatus;

/// The address of a partitionable endpoint as the DDW calls take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeAddress {
    /// PCI configuration address (bus << 16 | devfn << 8); QEMU only traces it.
    pub config_addr: u32,
    /// PHB unit ID (BUID), from the PHB's `reg`.
    pub buid: u64,
}

impl fmt::Display for PeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config {:#x}, buid {:#x}", self.config_addr, self.buid)
    }
}

/// How many outputs (counting the status word) the query call is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueryOutputs {
    /// 5 outputs: the largest block is 32 bits.
    Five,
    /// 6 outputs: the largest block is 64 bits (extension "64-bit query" present and 1).
    Six,
}

impl QueryOutputs {
    /// The RTAS `nret` value.
    pub const fn count(self) -> u32 {
        match self {
            QueryOutputs::Five => 5,
            QueryOutputs::Six => 6,
        }
    }
}

/// What `ibm,query-pe-dma-window` reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryResponse {
    /// Windows that can still be created.
    pub windows_available: u32,
    /// Largest number of TCEs a new window may have.
    pub largest_block: u64,
    /// Supported I/O page sizes (bit 0 = 4K, see `plan::PAGE_SIZE_BITS`).
    pub page_size_mask: u32,
    /// Page sizes that support H_MIGRATE_DMA (same layout; QEMU reports 0).
    pub migration_capable: u32,
}

/// What `ibm,create-pe-dma-window` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateResponse {
    /// The new window's TCE table.
    pub liobn: Liobn,
    /// The new window's first bus address.
    pub bus_base: BusAddr,
}

/// One DDW RTAS call with the arguments an error message needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DdwCall {
    /// `ibm,query-pe-dma-window`.
    Query {
        /// Endpoint.
        pe: PeAddress,
        /// Output count used.
        outputs: QueryOutputs,
    },
    /// `ibm,create-pe-dma-window`.
    Create {
        /// Endpoint.
        pe: PeAddress,
        /// log2 of the I/O page size.
        page_shift: u32,
        /// log2 of the window size.
        window_shift: u32,
    },
    /// `ibm,remove-pe-dma-window`.
    Remove {
        /// Window removed.
        liobn: Liobn,
    },
    /// `ibm,reset-pe-dma-windows`.
    Reset {
        /// Endpoint.
        pe: PeAddress,
    },
    /// `ibm,reset-pe-dma-windows` with a 4th input of 1: limited-addressing mode on.
    LimitedAddressing {
        /// Endpoint.
        pe: PeAddress,
    },
}

impl DdwCall {
    /// The RTAS call's name.
    pub const fn name(&self) -> &'static str {
        match self {
            DdwCall::Query { .. } => "ibm,query-pe-dma-window",
            DdwCall::Create { .. } => "ibm,create-pe-dma-window",
            DdwCall::Remove { .. } => "ibm,remove-pe-dma-window",
            DdwCall::Reset { .. } | DdwCall::LimitedAddressing { .. } => "ibm,reset-pe-dma-windows",
        }
    }
}

impl fmt::Display for DdwCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DdwCall::Query { pe, outputs } => {
                write!(f, "ibm,query-pe-dma-window({pe}, {} outputs)", outputs.count())
            }
            DdwCall::Create { pe, page_shift, window_shift } => write!(
                f,
                "ibm,create-pe-dma-window({pe}, page shift {page_shift}, window shift {window_shift})"
            ),
            DdwCall::Remove { liobn } => write!(f, "ibm,remove-pe-dma-window(liobn {liobn})"),
            DdwCall::Reset { pe } => write!(f, "ibm,reset-pe-dma-windows({pe})"),
            DdwCall::LimitedAddressing { pe } => {
                write!(f, "ibm,reset-pe-dma-windows({pe}, limited addressing on)")
            }
        }
    }
}

/// What a busy status asks the caller to do before calling again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusyWait {
    /// Status −2: call again at once (after yielding, if there were anything to yield to).
    Immediately,
    /// Status 9900–9905: wait this many milliseconds (10^(s−9900), clamped to 1..=1000).
    Milliseconds(u32),
}

impl BusyWait {
    /// The wait a status asks for, or `None` if the status is not a busy one.
    pub const fn for_status(status: i32) -> Option<BusyWait> {
        match status {
            _ if status == RtasStatus::BUSY.0 => Some(BusyWait::Immediately),
            9900 => Some(BusyWait::Milliseconds(1)),
            9901 => Some(BusyWait::Milliseconds(10)),
            9902 => Some(BusyWait::Milliseconds(100)),
            9903..=9905 => Some(BusyWait::Milliseconds(1000)),
            _ => None,
        }
    }
}

/// A DDW RTAS call returned a non-zero status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtasError {
    /// The call and its arguments.
    pub call: DdwCall,
    /// The RTAS status word.
    pub status: i32,
}

impl fmt::Display for RtasError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed with status {}", self.call, RtasStatus(self.status))
    }
}

/// The DDW RTAS calls of one platform. Each method makes exactly one RTAS call and returns
/// `Err` for every non-zero status (busy ones included).
pub trait DdwRtas {
    /// `ibm,query-pe-dma-window` with 3 inputs and `outputs` outputs.
    fn query(&mut self, pe: PeAddress, outputs: QueryOutputs) -> Result<QueryResponse, RtasError>;

    /// `ibm,create-pe-dma-window` for a window of `2^window_shift` bytes in `2^page_shift` pages.
    fn create(
        &mut self,
        pe: PeAddress,
        page_shift: u32,
        window_shift: u32,
    ) -> Result<CreateResponse, RtasError>;

    /// `ibm,remove-pe-dma-window`; the caller has cleared the window's TCEs.
    fn remove(&mut self, liobn: Liobn) -> Result<(), RtasError>;

    /// `ibm,reset-pe-dma-windows` (3 inputs): back to the boot-time default window.
    fn reset(&mut self, pe: PeAddress) -> Result<(), RtasError>;

    /// `ibm,reset-pe-dma-windows` with 4 inputs, the last 1: puts the PE in limited-addressing
    /// mode, so that a window created next starts at 4 GiB (LoPAR 2.13; Linux v6.15
    /// `limited_dma_window`). Only called when `ibm,ddw-extensions` entry 3 says it exists.
    fn enable_limited_addressing(&mut self, pe: PeAddress) -> Result<(), RtasError>;
}

/// How the planner waits between busy retries (the kernel spins on the timebase; tests count).
pub trait Delay {
    /// Waits as `wait` asks.
    fn wait(&mut self, wait: BusyWait);
}

/// How many times a DDW RTAS call is made while it answers busy.
pub const BUSY_ATTEMPTS: u32 = 64;

/// Makes `call` until it answers something other than busy (−2, 9900–9905), at most
/// [`BUSY_ATTEMPTS`] times, waiting as each busy answer asks (Linux `rtas_busy_delay`);
/// the last answer is returned.
pub fn retry_busy<T>(
    delay: &mut impl Delay,
    mut call: impl FnMut() -> Result<T, RtasError>,
) -> Result<T, RtasError> {
    let mut attempts = 1;
    loop {
        match call() {
            Err(error) if attempts < BUSY_ATTEMPTS => match BusyWait::for_status(error.status) {
                Some(wait) => delay.wait(wait),
                None => return Err(error),
            },
            answer => return answer,
        }
        attempts += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PE: PeAddress = PeAddress { config_addr: 0x800, buid: 0x800_0000_2000_0000 };

    #[test]
    fn error_sentences() {
        let create =
            RtasError { call: DdwCall::Create { pe: PE, page_shift: 24, window_shift: 33 }, status: -3 };
        assert_eq!(
            create.to_string(),
            "ibm,create-pe-dma-window(config 0x800, buid 0x800000020000000, page shift 24, window shift \
             33) failed with status -3 (parameter error)"
        );
        let query = RtasError { call: DdwCall::Query { pe: PE, outputs: QueryOutputs::Six }, status: -1 };
        assert_eq!(
            query.to_string(),
            "ibm,query-pe-dma-window(config 0x800, buid 0x800000020000000, 6 outputs) failed with status \
             -1 (hardware error)"
        );
        let remove = RtasError { call: DdwCall::Remove { liobn: Liobn(0x8000_0001) }, status: 9901 };
        assert_eq!(
            remove.to_string(),
            "ibm,remove-pe-dma-window(liobn 0x80000001) failed with status 9901 (extended delay)"
        );
        let reset = RtasError { call: DdwCall::Reset { pe: PE }, status: 7 };
        assert!(reset.to_string().ends_with("failed with status 7 (unknown status)"));
    }

    #[test]
    fn busy_statuses() {
        assert_eq!(BusyWait::for_status(-2), Some(BusyWait::Immediately));
        assert_eq!(BusyWait::for_status(9900), Some(BusyWait::Milliseconds(1)));
        assert_eq!(BusyWait::for_status(9902), Some(BusyWait::Milliseconds(100)));
        assert_eq!(BusyWait::for_status(9905), Some(BusyWait::Milliseconds(1000)));
        assert_eq!(BusyWait::for_status(9906), None);
        assert_eq!(BusyWait::for_status(-3), None);
        assert_eq!(BusyWait::for_status(0), None);
        assert_eq!(QueryOutputs::Five.count(), 5);
    }
}
