//! The `powervm-vf` profile: a PE with room for one window (an SR-IOV virtual function on
//! PowerVM; Linux `enable_ddw`'s "windows_available == 0" path). The DDW replaces the default window and
//! lives in table slot 0; no H_STUFF_TCE exceeds 512 entries; a failure after the removal
//! resets the PE and leaves a clean default window; a TCE budget below RAM gives a dynamic
//! window; busy answers to create are retried within a bound.

use drivers::addr::{BusAddr, PhysAddr, PhysRange};
use drivers::dma::DmaMode;
use drivers::iommu::ddw::{DdwError, DdwMapping, SingleWindowRefusal};
use drivers::iommu::{CreateError, DdwCall, QueryOutputs, TceHcall, TcePermission, CREATE_ATTEMPTS};
use papr_model::papr::hcall::H_HARDWARE;
use papr_model::papr::rtas::{BUSY as RTAS_BUSY, HARDWARE_ERROR as RTAS_HARDWARE_ERROR};
use papr_model::scenario::{check, run, Scenario, Strictness};
use papr_model::{model_liobn, CallKind, Fault, ModelCall, ModelConfig, Profile, DMA64_WINDOW_BASE};

const GIB: u64 = 1 << 30;

fn vf(ram_gib: u64) -> Scenario {
    Scenario::new(Profile::PowervmVf.config(), vec![PhysRange { base: PhysAddr(0), size: ram_gib * GIB }])
}

fn stuff_counts(calls: &[ModelCall]) -> Vec<u32> {
    calls
        .iter()
        .filter_map(|c| match c {
            ModelCall::Hcall(TceHcall::StuffTce { count, .. }) => Some(*count),
            _ => None,
        })
        .collect()
}

fn fault(kind: CallKind, nth: usize, status: i64) -> Fault {
    Fault { kind, nth, status, entries_written: 0 }
}

#[test]
fn the_ddw_replaces_the_default_window_in_slot_0() {
    let scenario = vf(2);
    let outcome = run(&scenario, |_| {});
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    let ddw = outcome.pe.ddw.as_ref().expect("a DDW");
    assert_eq!(ddw.slot, 0);
    assert!(outcome.pe.default.is_none(), "the default window is gone");
    assert_eq!(ddw.query.unwrap().windows_available, 1, "the second query, after the removal");
    assert_eq!(ddw.outputs, QueryOutputs::Six);
    assert_eq!((ddw.window.liobn(), ddw.window.bus_base()), (model_liobn(0), BusAddr(DMA64_WINDOW_BASE)));
    assert_eq!(ddw.window.page_shift(), 16, "the largest page the VF offers");
    assert!(matches!(ddw.mapping, DdwMapping::Direct));
    let windows: Vec<_> = outcome.model.windows().map(|w| w.liobn).collect();
    assert_eq!(windows, [model_liobn(0)], "one window: the DDW");
    // The whole 2 GiB default window (2^19 entries) cleared 512 at a time, then removed.
    let stuffs = stuff_counts(outcome.model.calls());
    assert_eq!(stuffs.len(), 1024);
    assert!(stuffs.iter().all(|&n| n <= 512));
    let removes: Vec<_> =
        outcome.model.calls().iter().filter(|c| c.kind() == CallKind::Remove).copied().collect();
    assert_eq!(removes, [ModelCall::Rtas(DdwCall::Remove { liobn: model_liobn(0) })]);
    let seen = outcome.model.translate(BusAddr(DMA64_WINDOW_BASE + 0x7654_3210));
    assert_eq!(seen, Some((PhysAddr(0x7654_3210), TcePermission::ReadWrite)));
    assert!(matches!(outcome.devices[0].mode, Ok(DmaMode::Direct { offset: DMA64_WINDOW_BASE, .. })));
}

#[test]
fn a_tce_budget_below_ram_gives_a_dynamic_window_in_slot_0() {
    // 2^16 TCEs of 64 KiB cover 4 GiB; RAM is 8 GiB.
    let scenario = vf(8);
    let outcome = run(&scenario, |_| {});
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    let ddw = outcome.pe.ddw.as_ref().expect("a DDW");
    assert_eq!((ddw.slot, ddw.window.tce_count()), (0, 1 << 16));
    assert!(matches!(ddw.mapping, DdwMapping::Dynamic(_)));
    // No RAM was mapped at set-up: the only entries written are the device's one 64 KiB page
    // and its clearing.
    let puts: Vec<_> = outcome
        .model
        .calls()
        .iter()
        .filter(|c| matches!(c.kind(), CallKind::PutTce | CallKind::PutTceIndirect))
        .collect();
    assert_eq!(puts.len(), 2, "{puts:x?}");
    assert!(matches!(outcome.devices[0].mode, Ok(DmaMode::DdwIommu { .. })));
}

#[test]
fn a_failure_after_the_removal_restores_a_clean_default_window() {
    let scenario = vf(2);
    let outcome = run(&scenario, |m| m.inject(fault(CallKind::Create, 1, RTAS_HARDWARE_ERROR.into())));
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    let Some(DdwError::AfterRemoval { restore, .. }) = &outcome.error else {
        panic!("expected a failure after the removal, got {:?}", outcome.error)
    };
    assert!(restore.is_clean(), "{restore:?}");
    assert_eq!(outcome.model.count(CallKind::Reset), 1);
    let window = outcome.model.window(model_liobn(0)).expect("the default window is back");
    assert_eq!((window.bus_base, window.tce_count << window.page_shift), (BusAddr(0), 2 * GIB));
    assert!(matches!(outcome.devices[0].mode, Ok(DmaMode::DefaultIommu { .. })));
    assert!(stuff_counts(outcome.model.calls()).iter().all(|&n| n <= 512));
    let message = outcome.error.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(message.contains("ibm,create-pe-dma-window") && message.contains("restored it"), "{message}");
}

#[test]
fn entries_a_reset_brings_back_are_cleared() {
    // Mapping RAM fails at the third indirect call and clearing what was written fails too;
    // the window is removed with its entries, and this hypervisor's reset brings them back.
    let scenario = vf(2);
    let outcome = run(&scenario, |m| {
        m.inject(fault(CallKind::PutTceIndirect, 3, H_HARDWARE));
        m.inject(fault(CallKind::StuffTce, 1025, H_HARDWARE));
    });
    let Some(DdwError::AfterRemoval { restore, .. }) = &outcome.error else {
        panic!("expected a failure after the removal, got {:?}", outcome.error)
    };
    assert!(restore.is_clean(), "{restore:?}");
    assert_eq!(check(&scenario, &outcome, Strictness::Reported), Vec::<String>::new());
    assert_eq!(outcome.model.mapped_entries(), 0, "no entry survives into the default window");
}

#[test]
fn busy_and_extended_delay_answers_to_create_are_retried() {
    let scenario = vf(2);
    let outcome = run(&scenario, |m| {
        m.inject(fault(CallKind::Create, 1, RTAS_BUSY.into()));
        m.inject(fault(CallKind::Create, 2, 9900));
        m.inject(fault(CallKind::Create, 3, 9905));
    });
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    assert!(outcome.pe.ddw.is_some(), "{:?}", outcome.error);
    assert_eq!(outcome.model.count(CallKind::Create), 4);
}

#[test]
fn a_create_busy_for_ever_gives_up_and_restores_the_default_window() {
    let scenario = vf(2);
    let outcome = run(&scenario, |m| {
        for nth in 1..=CREATE_ATTEMPTS as usize + 5 {
            m.inject(fault(CallKind::Create, nth, 9901));
        }
    });
    assert_eq!(outcome.model.count(CallKind::Create), CREATE_ATTEMPTS as usize);
    let Some(DdwError::AfterRemoval { cause, restore }) = &outcome.error else {
        panic!("expected a failure after the removal, got {:?}", outcome.error)
    };
    assert!(matches!(**cause, DdwError::Create(CreateError::StillBusy { .. })), "{cause:?}");
    assert!(restore.is_clean());
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
}

#[test]
fn a_default_window_in_use_is_not_replaced() {
    let mut scenario = vf(2);
    scenario.early_mapping = true;
    let outcome = run(&scenario, |_| {});
    assert!(matches!(
        outcome.error,
        Some(DdwError::SingleWindowRefused { why: SingleWindowRefusal::DefaultInUse { pages: 1 }, .. })
    ));
    let message = outcome.error.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(message.contains("still maps 1 page"), "{message}");
    assert_eq!(outcome.model.count(CallKind::Remove), 0);
    let stuffs = stuff_counts(outcome.model.calls());
    assert!(stuffs.iter().all(|&n| n <= 3), "only buffers' unmapping, no window cleared: {stuffs:?}");
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
}

#[test]
fn without_the_reset_extension_the_default_window_is_kept() {
    let mut scenario = vf(2);
    scenario.extensions = None;
    let outcome = run(&scenario, |_| {});
    assert!(matches!(
        outcome.error,
        Some(DdwError::SingleWindowRefused { why: SingleWindowRefusal::NoResetExtension, .. })
    ));
    assert_eq!(outcome.model.count(CallKind::Remove), 0);
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
}

#[test]
fn the_second_query_still_answering_0_resets() {
    let scenario =
        Scenario { config: ModelConfig { max_windows: 0, ..Profile::PowervmVf.config() }, ..vf(2) };
    let outcome = run(&scenario, |_| {});
    let Some(DdwError::AfterRemoval { cause, restore }) = &outcome.error else {
        panic!("expected a failure after the removal, got {:?}", outcome.error)
    };
    assert!(matches!(**cause, DdwError::NoWindowAvailable { .. }));
    assert!(restore.is_clean());
    assert_eq!(outcome.model.count(CallKind::Reset), 1);
}
