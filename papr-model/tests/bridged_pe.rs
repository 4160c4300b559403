//! The PE of a device behind a PCI-to-PCI bridge is found as for any device: the nearest node
//! at or above the device's that carries `ibm,dma-window` (Linux `pci_dma_find`). QEMU 7.2
//! describes the functions behind a bridge as nodes nested in the bridge's
//! (`hw/ppc/spapr_pci.c : spapr_dt_pci_bus`), so the walk passes the bridge's node up to the
//! PHB; a device the tree does not describe takes the PHB's PE; a bridge node with its own
//! window is a PE below the PHB (as PowerVM describes per-slot PEs), which gets no DDW. The
//! DDW calls then take the bridged device's own config address, set up against the model.

use drivers::addr::{PhysAddr, PhysRange};
use drivers::cmdline::DdwPolicy;
use drivers::devices::{DmaDevice, VIRTIO_BLK};
use drivers::devtree::pci_node::PciNodeInfo;
use drivers::devtree::platform::Platform;
use drivers::iommu::pe::{set_up, NoDdw, PeSetUp, SetUpOutcome, Start};
use drivers::pci::Bdf;
use papr_model::scenario::{CountingDelay, Scenario};
use papr_model::{HypervisorModel, Profile};

const GIB: u64 = 1 << 30;
const PHB: &str = "/pci@800000020000000";

/// The model's platform with, under its PHB, a bridge node `pci@2` (00:02.0) and — when
/// `described` — the disk's node `scsi@1` (01:01.0) nested in it.
fn platform_with_bridge(described: bool) -> (Scenario, Platform) {
    let scenario =
        Scenario::new(Profile::Qemu72.config(), vec![PhysRange { base: PhysAddr(0), size: 2 * GIB }]);
    let mut platform = scenario.platform();
    let phb = &mut platform.phbs[0];
    assert_eq!(phb.path, PHB);
    let node = |name: &str, path: String, depth: usize, bus: u8, device: u8| PciNodeInfo {
        name: name.to_string(),
        path,
        has_dma_window: false,
        depth,
        bus,
        device,
        function: 0,
        vendor_id: None,
        device_id: None,
        class_code: None,
    };
    phb.children = vec![node("pci@2", format!("{PHB}/pci@2"), 0, 0, 2)];
    if described {
        phb.children.push(node("scsi@1", format!("{PHB}/pci@2/scsi@1"), 1, 1, 1));
    }
    (scenario, platform)
}

fn bridged_disk() -> Vec<DmaDevice> {
    vec![DmaDevice { bdf: Bdf { bus: 1, device: 1, function: 0 }, driver: &VIRTIO_BLK }]
}

#[test]
fn a_described_device_behind_a_bridge_walks_up_to_the_phbs_pe_and_gets_a_ddw() {
    let (scenario, platform) = platform_with_bridge(true);
    let setup = PeSetUp::for_phb(&platform, &platform.phbs[0], &bridged_disk(), DdwPolicy::Auto);
    assert_eq!(setup.node, PHB);
    let pe = setup.ddw.clone().expect("a DDW is asked for");
    assert_eq!(
        pe.config_addr,
        Bdf { bus: 1, device: 1, function: 0 }.config_addr(0),
        "the bridged device's address"
    );
    let mut model = HypervisorModel::new(scenario.config);
    let mut dma = setup.initial_dma();
    let report = set_up(&mut model, &mut CountingDelay::default(), &setup, Start::Fresh, &mut dma);
    assert!(matches!(report.outcome, SetUpOutcome::Fresh(Ok(_))), "{:?}", report.outcome);
    assert!(report.ddw().is_some(), "the PE ends with its DDW");
}

#[test]
fn a_device_the_tree_does_not_describe_takes_the_phbs_pe() {
    let (_, platform) = platform_with_bridge(false);
    let setup = PeSetUp::for_phb(&platform, &platform.phbs[0], &bridged_disk(), DdwPolicy::Auto);
    assert_eq!(setup.node, PHB);
    assert!(setup.ddw.is_ok(), "{:?}", setup.ddw);
}

#[test]
fn a_bridge_node_with_its_own_window_is_a_pe_below_the_phb() {
    let (_, mut platform) = platform_with_bridge(true);
    platform.phbs[0].children[0].has_dma_window = true;
    let setup = PeSetUp::for_phb(&platform, &platform.phbs[0], &bridged_disk(), DdwPolicy::Auto);
    let bridge_node = format!("{PHB}/pci@2");
    assert_eq!(setup.node, bridge_node);
    assert_eq!(setup.ddw, Err(NoDdw::NodeBelowPhb { node: bridge_node }));
}
