//! PEs in trouble: a frozen PE (no `ibm,dma-window`), a query or create answering −3, a
//! hypervisor that restores the default window on its own — each handled without a crash or
//! a second reset, the PE left on its default window or with no DMA at all, and said so.

use drivers::addr::{PhysAddr, PhysRange};
use drivers::cmdline::DdwPolicy;
use drivers::dma::DmaTranslation;
use drivers::iommu::ddw::DdwError;
use drivers::iommu::pe::{set_up, NoDdw, PeSetUp, SetUpOutcome, Start};
use drivers::iommu::pe_report::{pe_lines, Line};
use drivers::iommu::DmaMask;
use papr_model::papr::hcall::H_HARDWARE;
use papr_model::papr::rtas::PARAMETER_ERROR;
use papr_model::scenario::{check, run, CountingDelay, Scenario, Strictness};
use papr_model::{CallKind, Fault, HypervisorModel, ModelConfig, Profile, SlotChoice};

const GIB: u64 = 1 << 30;

fn scenario(config: ModelConfig) -> Scenario {
    Scenario::new(config, vec![PhysRange { base: PhysAddr(0), size: 2 * GIB }])
}

fn kv(lines: &[Line], key: &str) -> Option<String> {
    lines.iter().find_map(|l| match l {
        Line::Kv(k, v) if k == key => Some(v.clone()),
        _ => None,
    })
}

#[test]
fn a_frozen_pe_without_a_dma_window_gets_no_dma_and_no_rtas_call() {
    let scenario = scenario(Profile::PowervmVf.config());
    let mut platform = scenario.platform();
    platform.phbs[0].dma_window = None;
    let setup = PeSetUp::for_phb(&platform, &platform.phbs[0], &scenario.devices(), DdwPolicy::Auto);
    let mut model = HypervisorModel::new(scenario.config);
    let mut dma = setup.initial_dma();
    let report = set_up(&mut model, &mut CountingDelay::default(), &setup, Start::Fresh, &mut dma);
    assert_eq!(report.outcome, SetUpOutcome::NoDdw(NoDdw::NoDmaWindow));
    assert!(model.calls().is_empty(), "a frozen PE is not asked anything: {:?}", model.calls());
    assert!(!dma.has_window());
    assert!(dma.choose_mode(DmaMask::from_bits(64), DmaTranslation::Iommu).is_err());
    let lines = pe_lines(0, &setup, &report, 0, 1);
    assert_eq!(kv(&lines, "pe.0.default_error").as_deref(), Some("the PHB has no ibm,dma-window"));
    assert!(kv(&lines, "pe.0.ddw.why").is_some_and(|w| w.contains("frozen")), "{lines:?}");
}

#[test]
fn a_query_answering_parameter_error_keeps_the_default_window_without_a_reset() {
    let scenario = scenario(Profile::Qemu72.config());
    let outcome = run(&scenario, |m| {
        m.inject(Fault { kind: CallKind::Query, nth: 1, status: PARAMETER_ERROR.into(), entries_written: 0 })
    });
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    assert!(
        matches!(outcome.error, Some(DdwError::Query(ref e)) if e.status == PARAMETER_ERROR),
        "{:?}",
        outcome.error
    );
    assert_eq!((outcome.model.count(CallKind::Create), outcome.model.count(CallKind::Reset)), (0, 0));
    assert!(outcome.pe.default.is_some() && outcome.pe.ddw.is_none());
}

#[test]
fn a_create_answering_parameter_error_keeps_the_default_window_without_a_reset() {
    let scenario = scenario(Profile::Qemu72.config());
    let outcome = run(&scenario, |m| {
        m.inject(Fault { kind: CallKind::Create, nth: 1, status: PARAMETER_ERROR.into(), entries_written: 0 })
    });
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    assert!(matches!(outcome.error, Some(DdwError::Create(_))), "{:?}", outcome.error);
    assert_eq!(outcome.model.count(CallKind::Reset), 0);
    assert!(outcome.pe.default.is_some() && outcome.pe.ddw.is_none());
}

/// On the single-window path the DDW (here in table slot 1, at bus 0) fails to map and is
/// removed; QEMU ≥ 7.1 then brings the default window back by itself. The driver sees it back,
/// does not reset a second time, and clears it before use. A hypervisor that does not restore
/// it gets exactly one reset.
#[test]
fn a_default_window_the_hypervisor_restores_on_its_own_is_not_reset_again() {
    for (restores, resets, state) in [(true, 0, "restored-by-hypervisor"), (false, 1, "restored")] {
        let config = ModelConfig {
            create_slot: SlotChoice::LastFree,
            restores_default_on_last_remove: restores,
            ..Profile::Qemu72.config()
        };
        let scenario = Scenario { policy: DdwPolicy::SingleWindow, ..scenario(config) };
        let outcome = run(&scenario, |m| {
            m.inject(Fault { kind: CallKind::PutTceIndirect, nth: 1, status: H_HARDWARE, entries_written: 0 })
        });
        assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new(), "{restores}");
        let Some(DdwError::AfterRemoval { restore, .. }) = &outcome.error else {
            panic!("{restores}: expected a failure after the removal: {:?}", outcome.error)
        };
        assert!(restore.is_clean(), "{restores}: {restore:?}");
        assert_eq!(restore.by_hypervisor, restores);
        assert_eq!(outcome.model.count(CallKind::Reset), resets, "{restores}");
        assert!(outcome.pe.default.is_some(), "{restores}: the PE keeps its default window");
        let platform = scenario.platform();
        let setup = PeSetUp::for_phb(&platform, &platform.phbs[0], &scenario.devices(), scenario.policy);
        let lines = pe_lines(0, &setup, &outcome.report, 0, 1);
        assert_eq!(kv(&lines, "pe.0.default_restore").as_deref(), Some(state), "{restores}");
    }
}
