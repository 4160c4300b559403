//! The hypervisor conformance report (`hv.*`): which platform this is (from the device tree),
//! what it offered (windows, page sizes, largest block, `ibm,ddw-extensions`, multi-TCE), and
//! every deviation from LoPAR or from the platform's known behaviour that the set-up observed,
//! each with its evidence — the calls and answers a [`Witness`](super::witness::Witness) saw.
//!
//! LoPAR (`ibm,remove-pe-dma-window`): "the platform must restore the default DMA window for
//! the PE" when the call removes the last remaining window and it is not the default one. QEMU
//! does so from 7.1 (hw/ppc/spapr_rtas_ddw.c `rtas_ibm_remove_pe_dma_window`, commit
//! "spapr/ddw: Reset DMA when the last non-default window is removed"), except that a DDW that
//! reused table 0 still carries that table's `def_win` flag (set by `spapr_phb_dma_reset`,
//! never cleared), so removing it restores nothing; QEMU < 7.1 never restores. QEMU's DDW calls
//! never answer busy.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::ddw::DdwError;
use super::hcall::HcallError;
use super::pe::{PeSetUp, SetUpReport};
use super::pe_report::Line;
use super::plan::PAGE_SIZE_BITS;
use super::rtas::{DdwCall, QueryResponse, RtasError};
use super::window::CreateError;
use super::witness::{BusySeen, DefaultAfterRemove, Evidence};
use crate::addr::Liobn;
use crate::devtree::dma_window::DdwExtensions;
use crate::devtree::identity::FirmwareIdentity;
use crate::devtree::platform::Platform;
use crate::iommu::map::MultiTce;

/// Which hypervisor the device tree describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HvKind {
    /// QEMU's pseries machine without KVM (TCG).
    QemuTcg,
    /// QEMU's pseries machine under KVM.
    QemuKvm,
    /// Not QEMU, root compatible `IBM,…`: PowerVM or a hypervisor that looks like it.
    PowervmLike,
    /// None of these.
    Unknown,
}

impl HvKind {
    /// The report's word.
    pub const fn name(self) -> &'static str {
        match self {
            HvKind::QemuTcg => "qemu-tcg",
            HvKind::QemuKvm => "qemu-kvm",
            HvKind::PowervmLike => "powervm-like",
            HvKind::Unknown => "unknown",
        }
    }

    const fn is_qemu(self) -> bool {
        matches!(self, HvKind::QemuTcg | HvKind::QemuKvm)
    }
}

/// The platform and the device-tree strings that say so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HvIdentity {
    /// Which.
    pub kind: HvKind,
    /// The evidence, in words.
    pub evidence: String,
}

/// Names the platform from its identity strings.
pub fn identify(id: &FirmwareIdentity) -> HvIdentity {
    let qemu = id.root_compatible.iter().any(|c| c == "qemu,pseries");
    let kvm = id.hypervisor.as_ref().is_some_and(|h| h.iter().any(|c| c == "linux,kvm"));
    let ibm = id.root_compatible.iter().any(|c| c.starts_with("IBM,"));
    let kind = match (qemu, kvm, ibm) {
        (true, true, _) => HvKind::QemuKvm,
        (true, false, _) => HvKind::QemuTcg,
        (false, false, true) => HvKind::PowervmLike,
        _ => HvKind::Unknown,
    };
    let compatible = match id.root_compatible.as_slice() {
        [] => String::from("no root compatible"),
        list => format!("root compatible \"{}\"", list.join("\", \"")),
    };
    let hypervisor = match &id.hypervisor {
        None => String::from("no /hypervisor node"),
        Some(list) if list.is_empty() => String::from("/hypervisor without compatible"),
        Some(list) => format!("/hypervisor compatible \"{}\"", list.join("\", \"")),
    };
    HvIdentity { kind, evidence: format!("{compatible}, {hypervisor}") }
}

/// What the PE's hypervisor offered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offer {
    /// The first query's answer.
    Queried(QueryResponse),
    /// The query failed.
    QueryFailed(RtasError),
    /// No query was made, and why.
    NotAsked(String),
}

/// One observed departure from LoPAR or from the platform's known behaviour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deviation {
    /// After the last DDW was removed the default window did not answer (LoPAR says the
    /// platform restores it then); the driver reset the PE itself.
    DefaultNotRestoredOnRemove {
        /// The DDW whose removal left no window.
        removed: Liobn,
        /// The default window.
        default: Liobn,
    },
    /// A successful reset did not bring the default window back.
    ResetWithoutDefault {
        /// The default window.
        default: Liobn,
    },
    /// Busy answers (retried).
    Busy(BusySeen),
    /// The query's page-size mask sets bits LoPAR does not define.
    UndefinedPageSizes {
        /// The mask.
        mask: u32,
        /// Its undefined bits.
        undefined: u32,
    },
    /// A create within what the query offered failed.
    CreateRefused {
        /// The failure.
        error: RtasError,
        /// The offer it was within.
        offer: QueryResponse,
    },
    /// The create answered a window the driver cannot use.
    UnusableWindow(String),
    /// Another RTAS call failed.
    RtasFailed(RtasError),
    /// A TCE hypercall failed.
    HcallFailed(HcallError),
}

impl Deviation {
    /// A short word for the report key.
    pub const fn code(&self) -> &'static str {
        match self {
            Deviation::DefaultNotRestoredOnRemove { .. } => "default-not-restored-on-remove",
            Deviation::ResetWithoutDefault { .. } => "reset-without-default",
            Deviation::Busy(_) => "busy",
            Deviation::UndefinedPageSizes { .. } => "undefined-page-sizes",
            Deviation::CreateRefused { .. } => "create-refused-within-offer",
            Deviation::UnusableWindow(_) => "unusable-window",
            Deviation::RtasFailed(_) => "rtas-failed",
            Deviation::HcallFailed(_) => "hcall-failed",
        }
    }

    /// What LoPAR or the platform's known behaviour leads one to expect instead, on `kind`.
    pub fn expected(&self, kind: HvKind) -> &'static str {
        match self {
            Deviation::DefaultNotRestoredOnRemove { .. } if kind.is_qemu() => {
                "LoPAR: removing the last non-default window restores the default window; QEMU >= 7.1 does, \
                 except for a DDW that reused table 0 (its def_win flag is never cleared), QEMU < 7.1 never; \
                 the driver reset the PE itself"
            }
            Deviation::DefaultNotRestoredOnRemove { .. } => {
                "LoPAR: removing the last non-default window restores the default window; the driver reset the \
                 PE itself"
            }
            Deviation::ResetWithoutDefault { .. } => {
                "LoPAR: ibm,reset-pe-dma-windows restores the PE's default window"
            }
            Deviation::Busy(_) if kind.is_qemu() => {
                "LoPAR allows busy answers (retried); QEMU's DDW calls never answer busy"
            }
            Deviation::Busy(_) => "LoPAR allows busy answers; they were retried",
            Deviation::UndefinedPageSizes { .. } => {
                "LoPAR defines page-size bits 0x1ff (4K 64K 16M 32M 64M 128M 256M 16G 2M); the others are ignored"
            }
            Deviation::CreateRefused { .. } => {
                "a create within the query's windows, page sizes and largest block succeeds"
            }
            Deviation::UnusableWindow(_) => {
                "a created window is aligned to its size and clear of the default window"
            }
            Deviation::RtasFailed(_) => "the call succeeds on a PE the device tree offers DDW for",
            Deviation::HcallFailed(_) => "a TCE for the partition's own RAM inside the window is accepted",
        }
    }
}

impl fmt::Display for Deviation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deviation::DefaultNotRestoredOnRemove { removed, default } => write!(
                f,
                "after ibm,remove-pe-dma-window(liobn {removed}) left no window, H_GET_TCE on the default window \
                 {default} failed"
            ),
            Deviation::ResetWithoutDefault { default } => write!(
                f,
                "ibm,reset-pe-dma-windows succeeded, then H_GET_TCE on the default window {default} failed"
            ),
            Deviation::Busy(seen) => write!(
                f,
                "{} answered busy (status {}) {} time(s)",
                seen.call, seen.status, seen.count
            ),
            Deviation::UndefinedPageSizes { mask, undefined } => write!(
                f,
                "ibm,query-pe-dma-window answered page sizes {mask:#x}, with undefined bits {undefined:#x}"
            ),
            Deviation::CreateRefused { error, offer } => write!(
                f,
                "{error}, though the query offered {} window(s), page sizes {:#x} and a largest block of {:#x} TCEs",
                offer.windows_available, offer.page_size_mask, offer.largest_block
            ),
            Deviation::UnusableWindow(sentence) => write!(f, "{sentence}"),
            Deviation::RtasFailed(error) => write!(f, "{error}"),
            Deviation::HcallFailed(error) => write!(f, "{error}"),
        }
    }
}

/// What one PE's set-up showed of its hypervisor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeConformance {
    /// The PE's index (as in `pe.N.*`).
    pub index: usize,
    /// `"warm restart"` for the second set-up of a warm restart, else `""`.
    pub phase: &'static str,
    /// The offer.
    pub offer: Offer,
    /// Its `ibm,ddw-extensions`.
    pub extensions: Option<DdwExtensions>,
    /// Whether its PHB has `ibm,ddw-applicable`.
    pub ddw_applicable: bool,
    /// The largest H_PUT_TCE_INDIRECT count and H_STUFF_TCE count (with its success) sent.
    pub largest_indirect: Option<usize>,
    /// See [`Evidence::largest_stuff`].
    pub largest_stuff: Option<(u32, bool)>,
    /// Whether removing the last DDW brought the default window back (`None`: not seen).
    pub remove_restores_default: Option<DefaultAfterRemove>,
    /// What departed from the expected.
    pub deviations: Vec<Deviation>,
}

/// All LoPAR-defined page-size bits (`PAGE_SIZE_BITS`).
fn defined_page_bits() -> u32 {
    PAGE_SIZE_BITS.iter().fold(0, |mask, (bit, _)| mask | bit)
}

impl PeConformance {
    /// Reads the evidence of PE `index`'s set-up (`setup`, `report`).
    pub fn observe(
        index: usize,
        phase: &'static str,
        setup: &PeSetUp<'_>,
        report: &SetUpReport,
        evidence: &Evidence,
    ) -> PeConformance {
        let first_query_failure =
            evidence.rtas_failures.iter().find(|e| matches!(e.call, DdwCall::Query { .. })).copied();
        let offer = match (evidence.offer, first_query_failure, &setup.ddw) {
            (Some(offer), _, _) => Offer::Queried(offer),
            (None, Some(error), _) => Offer::QueryFailed(error),
            (None, None, Err(why)) => Offer::NotAsked(format!("{why}")),
            (None, None, Ok(_)) => Offer::NotAsked(String::from("the set-up needed no query")),
        };
        let default = setup.default.window().map(|w| w.liobn());
        let mut deviations = Vec::new();
        if let (Some(DefaultAfterRemove::StayedRemoved { removed }), Some(default)) =
            (evidence.default_after_remove, default)
        {
            deviations.push(Deviation::DefaultNotRestoredOnRemove { removed, default });
        }
        if let (Some(false), Some(default)) = (evidence.default_after_reset, default) {
            deviations.push(Deviation::ResetWithoutDefault { default });
        }
        deviations.extend(evidence.busy.iter().copied().map(Deviation::Busy));
        if let Offer::Queried(query) = offer {
            let undefined = query.page_size_mask & !defined_page_bits();
            if undefined != 0 {
                deviations.push(Deviation::UndefinedPageSizes { mask: query.page_size_mask, undefined });
            }
        }
        for error in &evidence.rtas_failures {
            let within = |offer: &QueryResponse, page_shift: u32, window_shift: u32| {
                let page_bit =
                    PAGE_SIZE_BITS.iter().find(|(_, shift)| *shift == page_shift).map(|(bit, _)| *bit);
                let tces = 1u64.checked_shl(window_shift.saturating_sub(page_shift)).unwrap_or(u64::MAX);
                page_bit.is_some_and(|bit| offer.page_size_mask & bit != 0) && tces <= offer.largest_block
            };
            match (error.call, evidence.offer) {
                (DdwCall::Create { page_shift, window_shift, .. }, Some(offer))
                    if within(&offer, page_shift, window_shift) =>
                {
                    deviations.push(Deviation::CreateRefused { error: *error, offer });
                }
                _ => deviations.push(Deviation::RtasFailed(*error)),
            }
        }
        if let Some(DdwError::Create(bad @ CreateError::BadResponse { .. })) = report.ddw_error() {
            deviations.push(Deviation::UnusableWindow(format!("{bad}")));
        }
        deviations.extend(evidence.hcall_failures.iter().copied().map(Deviation::HcallFailed));
        PeConformance {
            index,
            phase,
            offer,
            extensions: setup.phb.ddw_extensions.clone(),
            ddw_applicable: setup.phb.ddw_applicable.is_some(),
            largest_indirect: evidence.largest_indirect,
            largest_stuff: evidence.largest_stuff,
            remove_restores_default: evidence.default_after_remove,
            deviations,
        }
    }
}

/// The names of the extensions `ext` offers.
fn extension_names(ext: &DdwExtensions) -> Vec<&'static str> {
    let mut names = Vec::new();
    if ext.reset_token().is_some() {
        names.push("reset");
    }
    if ext.query_outputs_64bit() {
        names.push("64-bit-query");
    }
    if ext.limited_addressing() {
        names.push("limited-addressing");
    }
    names
}

/// Page-size names of `mask`, smallest first.
fn page_size_names(mask: u32) -> String {
    let mut shifts: Vec<u32> =
        PAGE_SIZE_BITS.iter().filter(|(bit, _)| mask & bit != 0).map(|(_, s)| *s).collect();
    shifts.sort_unstable();
    let names: Vec<String> = shifts
        .iter()
        .map(|&s| match s {
            30.. => format!("{}G", 1u64 << (s - 30)),
            20.. => format!("{}M", 1u64 << (s - 20)),
            _ => format!("{}K", 1u64 << (s - 10)),
        })
        .collect();
    match names.is_empty() {
        true => String::from("none"),
        false => names.join(","),
    }
}

/// The `hv.*` lines for `platform` and its PEs' observations.
pub fn hv_lines(platform: &Platform, pes: &[PeConformance]) -> Vec<Line> {
    let id = identify(&platform.identity);
    let mut lines = Vec::new();
    let mut kv = |key: String, value: String| lines.push(Line::Kv(key, value));
    kv(String::from("hv.platform"), String::from(id.kind.name()));
    kv(String::from("hv.platform.evidence"), id.evidence.clone());
    if let Some(model) = &platform.identity.model {
        kv(String::from("hv.model"), model.clone());
    }
    let multi = match platform.multi_tce() {
        MultiTce::Available => "yes",
        MultiTce::Unavailable => "no",
    };
    kv(String::from("hv.multi_tce"), String::from(multi));
    let applicable = platform.phbs.iter().filter(|p| p.ddw_applicable.is_some()).count();
    kv(String::from("hv.ddw_phbs"), format!("{applicable}/{}", platform.phbs.len()));
    let mut extensions: Vec<&str> = Vec::new();
    for name in platform.phbs.iter().filter_map(|p| p.ddw_extensions.as_ref()).flat_map(extension_names) {
        if !extensions.contains(&name) {
            extensions.push(name);
        }
    }
    kv(
        String::from("hv.extensions"),
        String::from(if extensions.is_empty() { "none" } else { "" }) + &extensions.join(","),
    );
    let mut busy = 0;
    let mut deviations = 0;
    for pe in pes {
        let key = |what: &str| match pe.phase {
            "" => format!("hv.pe.{}.{what}", pe.index),
            _ => format!("hv.pe.{}.warm.{what}", pe.index),
        };
        match &pe.offer {
            Offer::Queried(q) => {
                kv(key("windows"), format!("{}", q.windows_available));
                kv(key("page_sizes"), page_size_names(q.page_size_mask));
                kv(key("largest_block"), format!("{:#x}", q.largest_block));
            }
            Offer::QueryFailed(error) => kv(key("offer"), format!("query failed: {error}")),
            Offer::NotAsked(why) => kv(key("offer"), format!("not asked: {why}")),
        }
        if let Some(n) = pe.largest_indirect {
            kv(key("largest_indirect"), format!("{n}"));
        }
        match pe.remove_restores_default {
            Some(DefaultAfterRemove::Restored { removed }) => kv(
                key("remove_restores_default"),
                format!(
                    "yes (H_GET_TCE on the default window answered after liobn {removed} went, no reset)"
                ),
            ),
            Some(DefaultAfterRemove::StayedRemoved { removed }) => kv(
                key("remove_restores_default"),
                format!("no (H_GET_TCE on the default window failed after liobn {removed} went)"),
            ),
            None => {}
        }
        if let Some((n, ok)) = pe.largest_stuff {
            kv(key("largest_stuff"), format!("{n} {}", if ok { "ok" } else { "failed" }));
        }
        for deviation in &pe.deviations {
            if let Deviation::Busy(seen) = deviation {
                busy += seen.count;
            }
            let prefix = format!("hv.deviation.{deviations}");
            kv(prefix.clone(), String::from(deviation.code()));
            kv(
                format!("{prefix}.pe"),
                match pe.phase {
                    "" => format!("{}", pe.index),
                    phase => format!("{} ({phase})", pe.index),
                },
            );
            kv(format!("{prefix}.evidence"), format!("{deviation}"));
            kv(format!("{prefix}.expected"), String::from(deviation.expected(id.kind)));
            deviations += 1;
        }
    }
    kv(String::from("hv.busy"), format!("{busy}"));
    kv(String::from("hv.deviations"), format!("{deviations}"));
    lines.push(Line::Say(summary(&id, multi, &extensions, pes, deviations)));
    lines
}

fn summary(
    id: &HvIdentity,
    multi: &str,
    extensions: &[&str],
    pes: &[PeConformance],
    deviations: usize,
) -> String {
    let platform = match id.kind {
        HvKind::QemuTcg => "QEMU pseries (TCG)",
        HvKind::QemuKvm => "QEMU pseries under KVM",
        HvKind::PowervmLike => "PowerVM-like",
        HvKind::Unknown => "an unknown hypervisor",
    };
    let offers: Vec<String> = pes
        .iter()
        .filter(|pe| pe.phase.is_empty())
        .filter_map(|pe| match &pe.offer {
            Offer::Queried(q) => Some(format!(
                "PE {}: {} window(s), pages {}, largest block {:#x} TCEs",
                pe.index,
                q.windows_available,
                page_size_names(q.page_size_mask),
                q.largest_block
            )),
            _ => None,
        })
        .collect();
    let offers = match offers.is_empty() {
        true => String::from("no PE was queried"),
        false => offers.join("; "),
    };
    let extensions = match extensions.is_empty() {
        true => String::from("none"),
        false => extensions.join(", "),
    };
    format!(
        "hypervisor: {platform} ({}); multi-TCE {multi}; DDW extensions {extensions}; {offers}; {deviations} \
         deviation(s) observed",
        id.evidence
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn id(root: &[&str], hypervisor: Option<&[&str]>) -> FirmwareIdentity {
        FirmwareIdentity {
            root_compatible: root.iter().map(|s| s.to_string()).collect(),
            model: None,
            hypervisor: hypervisor.map(|h| h.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn platforms_are_named_from_the_tree() {
        assert_eq!(identify(&id(&["qemu,pseries"], None)).kind, HvKind::QemuTcg);
        assert_eq!(identify(&id(&["qemu,pseries"], Some(&["linux,kvm"]))).kind, HvKind::QemuKvm);
        assert_eq!(identify(&id(&["IBM,9080-HEX"], None)).kind, HvKind::PowervmLike);
        assert_eq!(identify(&id(&[], None)).kind, HvKind::Unknown);
        assert_eq!(identify(&id(&["IBM,9080-HEX"], Some(&["linux,kvm"]))).kind, HvKind::Unknown);
        assert_eq!(
            identify(&id(&["qemu,pseries"], Some(&["linux,kvm"]))).evidence,
            "root compatible \"qemu,pseries\", /hypervisor compatible \"linux,kvm\""
        );
    }

    #[test]
    fn page_size_names_read_like_sizes() {
        assert_eq!(page_size_names(0x107), "4K,64K,2M,16M");
        assert_eq!(page_size_names(0x80), "16G");
        assert_eq!(page_size_names(0), "none");
    }

    #[test]
    fn extension_names_follow_the_cells() {
        assert_eq!(extension_names(&DdwExtensions { cells: vec![2, 0x2b, 1] }), ["reset", "64-bit-query"]);
        assert_eq!(
            extension_names(&DdwExtensions { cells: vec![3, 0x2b, 1, 1] }),
            ["reset", "64-bit-query", "limited-addressing"]
        );
        assert_eq!(extension_names(&DdwExtensions { cells: vec![0, 0x2b] }), Vec::<&str>::new());
    }
}
