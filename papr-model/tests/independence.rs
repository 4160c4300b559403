//! The model is an independent witness: it takes its PAPR tables from LoPAR and QEMU
//! (`papr_model::papr`), not from the driver, so a wrong entry in the driver's tables makes the
//! driver disagree with the model — shown here by corrupting a copy of the driver's page-size
//! table and watching the same check fail.

use drivers::addr::{PhysAddr, PhysRange};
use drivers::iommu::plan::{largest_page_shift, largest_page_shift_in, PAGE_SIZE_BITS};
use drivers::iommu::rtas::{DdwRtas, PeAddress};
use papr_model::papr::QUERY_PAGE_SIZES;
use papr_model::scenario::{check, run, Scenario, Strictness};
use papr_model::{HypervisorModel, ModelConfig, Profile, MODEL_BUID};

const PE: PeAddress = PeAddress { config_addr: 0x800, buid: MODEL_BUID };

/// For each page size the model can offer on its own, what `decode` (the driver's choice of
/// page shift from a query mask) makes of it, and whether the model then accepts a window
/// of that page size: every disagreement, as a sentence.
fn page_size_disagreements(decode: impl Fn(u32) -> Option<u32>) -> Vec<String> {
    let mut broken = Vec::new();
    for &(shift, bit) in &QUERY_PAGE_SIZES {
        let mut model = HypervisorModel::new(ModelConfig { page_size_mask: bit, ..Profile::Qemu72.config() });
        match decode(bit) {
            Some(chosen) if chosen == shift => {}
            other => {
                broken.push(format!("mask bit {bit:#x} is 2^{shift}-byte pages, the driver reads {other:?}"))
            }
        }
        let Some(chosen) = decode(bit) else { continue };
        if let Err(error) = model.create(PE, chosen, chosen.max(31) + 1) {
            broken.push(format!(
                "with only bit {bit:#x} offered, the model refuses page shift {chosen}: {error}"
            ));
        }
    }
    broken
}

#[test]
fn the_drivers_page_size_table_agrees_with_the_models() {
    assert_eq!(page_size_disagreements(largest_page_shift), Vec::<String>::new());
}

#[test]
fn a_wrong_bit_in_the_drivers_table_is_caught() {
    // The 2M entry given the 16M page's bit and vice versa: a plausible transcription slip.
    let mut corrupted = PAGE_SIZE_BITS;
    for entry in corrupted.iter_mut() {
        entry.0 = match entry.0 {
            0x004 => 0x100,
            0x100 => 0x004,
            other => other,
        };
    }
    let broken = page_size_disagreements(|mask| largest_page_shift_in(&corrupted, mask));
    assert_eq!(broken.len(), 4, "{broken:#?}");
    assert!(
        broken.iter().any(|b| b.contains("bit 0x4") && b.contains("refuses page shift 21")),
        "{broken:#?}"
    );
}

#[test]
fn the_whole_set_up_creates_the_page_size_the_model_offers() {
    for &(shift, bit) in &QUERY_PAGE_SIZES {
        let config = ModelConfig { page_size_mask: bit, ..Profile::Qemu72.config() };
        let scenario = Scenario::new(config, vec![PhysRange { base: PhysAddr(0), size: 256 << 20 }]);
        let outcome = run(&scenario, |_| {});
        assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new(), "bit {bit:#x}");
        let ddw =
            outcome.pe.ddw.as_ref().unwrap_or_else(|| panic!("bit {bit:#x}: no DDW: {:?}", outcome.error));
        assert_eq!(ddw.window.page_shift(), shift, "bit {bit:#x}");
    }
}
