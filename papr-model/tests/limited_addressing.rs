//! Limited addressing (LoPAR 2.13, `ibm,ddw-extensions` entry 3; Linux v6.15 67dfc11982f7): a
//! PE whose devices drive 33 to 63 address bits is switched to limited-addressing mode by
//! `ibm,reset-pe-dma-windows` with a fourth input of 1, after which a created window starts at
//! 4 GiB; the window is sized to end within the devices' mask. Without the extension those
//! devices keep the default window.

use drivers::addr::{BusAddr, PhysAddr, PhysRange};
use drivers::dma::{DmaMode, DmaTranslation};
use drivers::iommu::ddw::DdwError;
use drivers::iommu::pe::NoDdw;
use drivers::iommu::plan::WindowMode;
use drivers::iommu::rtas::DdwCall;
use drivers::iommu::DmaMask;
use papr_model::scenario::{check, run, Scenario, Strictness};
use papr_model::{CallKind, Fault, ModelCall, ModelConfig, Profile};

/// RTAS hardware error (LoPAR 7.2.8).
const RTAS_HARDWARE_ERROR: i64 = -1;

const GIB: u64 = 1 << 30;

fn ram(size: u64) -> Vec<PhysRange> {
    vec![PhysRange { base: PhysAddr(0), size }]
}

fn limited(config: ModelConfig) -> ModelConfig {
    ModelConfig { limited_addressing: true, ..config }
}

#[test]
fn a_40_bit_device_gets_a_direct_window_at_4g_inside_its_mask() {
    let scenario =
        Scenario { first_device_bits: 40, ..Scenario::new(limited(Profile::Qemu72.config()), ram(8 * GIB)) };
    let outcome = run(&scenario, |_| {});
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    // The switch comes before the create.
    let calls: Vec<_> = outcome
        .model
        .calls()
        .iter()
        .filter_map(|c| match c {
            ModelCall::Rtas(DdwCall::LimitedAddressing { .. }) => Some("limited"),
            ModelCall::Rtas(DdwCall::Create { .. }) => Some("create"),
            _ => None,
        })
        .collect();
    assert_eq!(calls, ["limited", "create"]);
    let ddw = outcome.pe.ddw.as_ref().expect("a DDW");
    assert_eq!(ddw.window.bus_base(), BusAddr(4 * GIB));
    assert!(ddw.window.fits_dma_mask(DmaMask::from_bits(40)), "{:?}", ddw.window);
    assert_eq!(ddw.mapping.mode(), WindowMode::Direct);
    // Sized for the 8 GiB of RAM (2^33), it spans bus 4–12 GiB, well within 40 bits.
    assert_eq!(ddw.plan.window_shift, 33);
    let mode = outcome.pe.choose_mode(DmaMask::from_bits(40), DmaTranslation::Iommu).unwrap();
    assert!(matches!(mode, DmaMode::Direct { .. }), "{mode:?}");
    assert_eq!(outcome.devices[0].mask_bits, 40);
    assert!(matches!(outcome.devices[0].mode, Ok(DmaMode::Direct { .. })), "{:?}", outcome.devices[0]);
}

#[test]
fn ram_beyond_a_36_bit_mask_gets_a_per_buffer_window_that_still_fits() {
    // 64 GiB of RAM at 4 GiB would end past 2^36: the window is capped at 2^35 (ending at
    // 36 GiB) and used per buffer.
    let scenario =
        Scenario { first_device_bits: 36, ..Scenario::new(limited(Profile::Qemu72.config()), ram(64 * GIB)) };
    let outcome = run(&scenario, |_| {});
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    let ddw = outcome.pe.ddw.as_ref().expect("a DDW");
    assert_eq!((ddw.window.bus_base(), ddw.plan.window_shift), (BusAddr(4 * GIB), 35));
    assert!(ddw.window.fits_dma_mask(DmaMask::from_bits(36)));
    assert_ne!(ddw.mapping.mode(), WindowMode::Direct);
    assert_eq!(ddw.stats.tces, 0, "nothing mapped up front");
}

#[test]
fn without_the_extension_a_40_bit_device_keeps_the_default_window() {
    let scenario =
        Scenario { first_device_bits: 40, ..Scenario::new(Profile::Qemu72.config(), ram(8 * GIB)) };
    let outcome = run(&scenario, |_| {});
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    assert!(outcome.pe.ddw.is_none());
    assert_eq!(no_ddw(&outcome.report), Some(&NoDdw::NoWideDevice { narrow: 1, limited: 1 }));
    assert_eq!(outcome.model.count(CallKind::Query) + outcome.model.count(CallKind::Create), 0);
    assert!(no_ddw(&outcome.report).unwrap().to_string().contains("offers no limited-addressing mode"));
    let mode = outcome.pe.choose_mode(DmaMask::from_bits(40), DmaTranslation::Iommu).unwrap();
    assert!(matches!(mode, DmaMode::DefaultIommu { .. }), "{mode:?}");
}

#[test]
fn a_64_bit_device_on_the_pe_gets_a_full_window_not_a_limited_one() {
    let scenario =
        Scenario { narrow_device: true, ..Scenario::new(limited(Profile::Qemu72.config()), ram(8 * GIB)) };
    let outcome = run(&scenario, |_| {});
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    let ddw = outcome.pe.ddw.as_ref().expect("a DDW");
    assert_ne!(ddw.window.bus_base(), BusAddr(4 * GIB));
    assert!(!outcome
        .model
        .calls()
        .iter()
        .any(|c| matches!(c, ModelCall::Rtas(DdwCall::LimitedAddressing { .. }))));
}

#[test]
fn a_failed_switch_creates_nothing_and_the_default_window_serves() {
    let scenario =
        Scenario { first_device_bits: 40, ..Scenario::new(limited(Profile::Qemu72.config()), ram(8 * GIB)) };
    let outcome = run(&scenario, |model| {
        model.inject(Fault { kind: CallKind::Reset, nth: 1, status: RTAS_HARDWARE_ERROR, entries_written: 0 })
    });
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    let Some(DdwError::LimitedAddressing(error)) = &outcome.error else { panic!("{:?}", outcome.error) };
    assert_eq!(error.to_string(), "ibm,reset-pe-dma-windows(config 0x800, buid 0x800000020000000, limited addressing on) failed with status -1 (hardware error)");
    assert_eq!(outcome.model.count(CallKind::Create), 0);
    assert!(outcome.pe.ddw.is_none());
    assert!(outcome.pe.default.is_some());
}

fn no_ddw(report: &drivers::iommu::pe::SetUpReport) -> Option<&NoDdw> {
    match &report.outcome {
        drivers::iommu::pe::SetUpOutcome::NoDdw(why) => Some(why),
        _ => None,
    }
}

#[test]
fn the_report_names_limited_addressing() {
    use drivers::iommu::pe_report::{pe_lines, Line};
    let scenario =
        Scenario { first_device_bits: 40, ..Scenario::new(limited(Profile::Qemu72.config()), ram(8 * GIB)) };
    let platform = scenario.platform();
    let devices = scenario.devices();
    let setup = drivers::iommu::pe::PeSetUp::for_phb(&platform, &platform.phbs[0], &devices, scenario.policy);
    let outcome = run(&scenario, |_| {});
    let lines = pe_lines(0, &setup, &outcome.report, 0, 1);
    let kv: Vec<String> = lines
        .iter()
        .filter_map(|l| match l {
            Line::Kv(key, value) => Some(format!("{key}={value}")),
            _ => None,
        })
        .collect();
    for line in ["pe.0.ddw.addressing=limited", "pe.0.ddw.mask_bits=40", "pe.0.ddw.bus_base=0x100000000"] {
        assert!(kv.iter().any(|l| l == line), "{line} missing from {kv:?}");
    }
}
