//! Window geometry, and creating windows against the QEMU model and odd hypervisors.

use drivers::addr::*;
use drivers::iommu::*;
use std::vec::Vec;

use drivers::devtree::dma_window::DmaWindowProp;
use drivers::iommu::plan::{plan_window, WindowLimit, WindowMode};
use drivers::iommu::rtas::{DdwCall, QueryOutputs, QueryResponse};
use papr_model::{model_liobn, CallKind, Fault, HypervisorModel, DMA64_WINDOW_BASE, MODEL_BUID};

const PE: PeAddress = PeAddress { config_addr: 0x800, buid: MODEL_BUID };

/// Records every wait instead of waiting.
#[derive(Default)]
struct CountingDelay(Vec<BusyWait>);

impl Delay for CountingDelay {
    fn wait(&mut self, wait: BusyWait) {
        self.0.push(wait);
    }
}

fn plan(page_shift: u32, window_shift: u32) -> WindowPlan {
    WindowPlan { page_shift, window_shift, mode: WindowMode::Direct, limit: WindowLimit::Ram }
}

#[test]
fn geometry() {
    let window = DmaWindow::new(Liobn(0x8000_0001), BusAddr(DMA64_WINDOW_BASE), 24, 33).unwrap();
    assert_eq!((window.size(), window.tce_count(), window.page_size()), (1 << 33, 512, 1 << 24));
    assert_eq!(window.end(), DMA64_WINDOW_BASE + (1 << 33));
    assert_eq!(window.iova_for_phys(PhysAddr(0x1234_5678)), Some(BusAddr(DMA64_WINDOW_BASE + 0x1234_5678)));
    assert_eq!(window.iova_for_phys(PhysAddr(1 << 33)), None);
    assert!(window.contains(BusAddr(DMA64_WINDOW_BASE), 1 << 33));
    assert!(!window.contains(BusAddr(DMA64_WINDOW_BASE), (1 << 33) + 1));
    assert!(!window.contains(BusAddr(DMA64_WINDOW_BASE - 1), 2));
    assert!(!window.contains(BusAddr(u64::MAX), 2));
    assert_eq!(window.index_of(BusAddr(DMA64_WINDOW_BASE + (3 << 24) + 5)), Some(3));
    assert_eq!(window.ioba_of(511), Some(BusAddr(DMA64_WINDOW_BASE + (511 << 24))));
    assert_eq!(window.ioba_of(512), None);
    assert!(window.fits_dma_mask(DmaMask::from_bits(64)));
    assert!(!window.fits_dma_mask(DmaMask::from_bits(59)));
    assert!(window.fits_dma_mask(DmaMask::from_bits(60)));
    let default = DmaWindowProp { liobn: Liobn(0x8000_0000), bus_addr: BusAddr(0), size: 1 << 30 };
    let default = DmaWindow::from_default(&default).unwrap();
    assert_eq!((default.page_shift(), default.tce_count()), (12, 1 << 18));
}

#[test]
fn invalid_windows_are_refused() {
    let liobn = Liobn(1);
    assert_eq!(DmaWindow::new(liobn, BusAddr(0), 11, 30), Err(WindowError::BadPageShift { page_shift: 11 }));
    assert_eq!(
        DmaWindow::new(liobn, BusAddr(0), 24, 20),
        Err(WindowError::BadWindowShift { page_shift: 24, window_shift: 20 })
    );
    assert!(DmaWindow::new(liobn, BusAddr(0), 24, 64).is_err());
    assert_eq!(
        DmaWindow::new(liobn, BusAddr(0x1000), 16, 30),
        Err(WindowError::MisalignedBase { bus_base: BusAddr(0x1000), page_shift: 16 })
    );
    assert!(matches!(
        DmaWindow::new(liobn, BusAddr(1 << 63), 12, 63),
        Err(WindowError::PastEndOfBusSpace { .. })
    ));
    assert!(matches!(DmaWindow::with_size(liobn, BusAddr(0), 12, 0x1800), Err(WindowError::BadSize { .. })));
    assert_eq!(DmaMask::from_bits(32).highest(), 0xffff_ffff);
    assert_eq!(DmaMask::from_bits(0).highest(), 0);
}

#[test]
fn create_after_query_and_plan() {
    let mut model = HypervisorModel::default();
    let query = model.query(PE, QueryOutputs::Six).unwrap();
    let plan = plan_window(&query, 8 << 30, 64).unwrap();
    let window = create_window(&mut model, &mut CountingDelay::default(), PE, &plan).unwrap();
    assert_eq!(window.liobn(), model_liobn(1));
    assert_eq!((window.bus_base(), window.page_shift(), window.tce_count()), (BusAddr(1 << 59), 24, 512));
    let in_model = model.window(window.liobn()).unwrap();
    assert_eq!((in_model.bus_base, in_model.page_shift, in_model.tce_count), (BusAddr(1 << 59), 24, 512));
}

#[test]
fn busy_answers_are_retried_with_the_asked_wait() {
    let mut model = HypervisorModel::default();
    for (nth, status) in [(1, -2), (2, 9900), (3, 9902), (4, 9905)] {
        model.inject(Fault { kind: CallKind::Create, nth, status, entries_written: 0 });
    }
    let mut delay = CountingDelay::default();
    let window = create_window(&mut model, &mut delay, PE, &plan(24, 31)).unwrap();
    assert_eq!(window.size(), 1 << 31);
    assert_eq!(model.count(CallKind::Create), 5);
    let expected = [
        BusyWait::Immediately,
        BusyWait::Milliseconds(1),
        BusyWait::Milliseconds(100),
        BusyWait::Milliseconds(1000),
    ];
    assert_eq!(delay.0, expected);
}

#[test]
fn busy_forever_gives_up_after_the_budget() {
    let mut model = HypervisorModel::default();
    for nth in 1..=100 {
        model.inject(Fault { kind: CallKind::Create, nth, status: 9901, entries_written: 0 });
    }
    let mut delay = CountingDelay::default();
    let error = create_window(&mut model, &mut delay, PE, &plan(24, 31)).unwrap_err();
    assert!(matches!(error, CreateError::StillBusy { attempts: CREATE_ATTEMPTS, .. }));
    assert_eq!(model.count(CallKind::Create), CREATE_ATTEMPTS as usize);
    assert_eq!(delay.0.len(), CREATE_ATTEMPTS as usize - 1);
    assert_eq!(
        error.to_string(),
        "ibm,create-pe-dma-window(config 0x800, buid 0x800000020000000, page shift 24, window shift 31) was \
         still busy after 64 attempts (last status 9901)"
    );
}

#[test]
fn hard_failures_are_not_retried() {
    let mut model = HypervisorModel::default();
    let mut delay = CountingDelay::default();
    // 8K pages are not offered: QEMU answers -3 once.
    let error = create_window(&mut model, &mut delay, PE, &plan(13, 31)).unwrap_err();
    assert_eq!(error.to_string().split(" failed").nth(1), Some(" with status -3 (parameter error)"));
    assert!(matches!(error, CreateError::Rtas(RtasError { status: -3, .. })));
    assert_eq!((model.count(CallKind::Create), delay.0.len()), (1, 0));
    // A plan that cannot describe a window never reaches the hypervisor.
    let bad = create_window(&mut model, &mut delay, PE, &plan(24, 70)).unwrap_err();
    assert!(matches!(bad, CreateError::BadPlan(WindowError::BadWindowShift { .. })));
    assert_eq!(model.count(CallKind::Create), 1);
}

/// Answers create with a fixed response and records removals.
struct OddHypervisor {
    response: CreateResponse,
    removed: Vec<Liobn>,
}

impl DdwRtas for OddHypervisor {
    fn query(&mut self, pe: PeAddress, outputs: QueryOutputs) -> Result<QueryResponse, RtasError> {
        Err(RtasError { call: DdwCall::Query { pe, outputs }, status: -1 })
    }
    fn create(&mut self, _: PeAddress, _: u32, _: u32) -> Result<CreateResponse, RtasError> {
        Ok(self.response)
    }
    fn remove(&mut self, liobn: Liobn) -> Result<(), RtasError> {
        self.removed.push(liobn);
        Err(RtasError { call: DdwCall::Remove { liobn }, status: -1 })
    }
    fn reset(&mut self, pe: PeAddress) -> Result<(), RtasError> {
        Err(RtasError { call: DdwCall::Reset { pe }, status: -1 })
    }
    fn enable_limited_addressing(&mut self, pe: PeAddress) -> Result<(), RtasError> {
        Err(RtasError { call: DdwCall::LimitedAddressing { pe }, status: -1 })
    }
}

#[test]
fn unusable_responses_are_removed_again() {
    let response = CreateResponse { liobn: Liobn(0x8000_0001), bus_base: BusAddr(0x800) };
    let mut odd = OddHypervisor { response, removed: Vec::new() };
    let error = create_window(&mut odd, &mut CountingDelay::default(), PE, &plan(24, 31)).unwrap_err();
    assert_eq!(odd.removed, [Liobn(0x8000_0001)]);
    assert_eq!(
        error.to_string(),
        "ibm,create-pe-dma-window returned an unusable window (liobn 0x80000001, bus base 0x800): window bus \
         base 0x800 is not aligned to 2^24; removing it failed too: ibm,remove-pe-dma-window(liobn \
         0x80000001) failed with status -1 (hardware error)"
    );
    odd.response.bus_base = BusAddr(u64::MAX - (1 << 24) + 1);
    let error = create_window(&mut odd, &mut CountingDelay::default(), PE, &plan(24, 31)).unwrap_err();
    assert!(matches!(error, CreateError::BadResponse { why: WindowError::PastEndOfBusSpace { .. }, .. }));
}
