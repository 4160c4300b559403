//! Who the platform says it is: the root node's `compatible` and `model`, and the
//! `/hypervisor` node.
//!
//! QEMU's pseries machine writes `compatible = "qemu,pseries"` and `model = "IBM pSeries
//! (emulated by qemu)"` on the root (hw/ppc/spapr.c `spapr_build_fdt`), and a `/hypervisor`
//! node with `compatible = "linux,kvm"` only when it runs under KVM (`spapr_dt_hypervisor`,
//! called `if (kvm_enabled())`); Linux tells a KVM guest the same way (arch/powerpc/kernel/
//! firmware.c `check_kvm_guest`). PowerVM's root names the machine type, `"IBM,<type-model>"`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use fdt::Fdt;

use crate::devtree::cells::{prop, single_string, string_list};

/// The identifying strings of the device tree (empty where absent or unreadable).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FirmwareIdentity {
    /// The root node's `compatible` entries.
    pub root_compatible: Vec<String>,
    /// The root node's `model`.
    pub model: Option<String>,
    /// `/hypervisor`'s `compatible` entries, if the node exists.
    pub hypervisor: Option<Vec<String>>,
}

/// Reads the identity strings; nothing here is ever an error (a missing or malformed string
/// just leaves the platform less identified).
pub fn firmware_identity(fdt: &Fdt<'_>) -> FirmwareIdentity {
    let root = fdt.find_node("/");
    let strings = |bytes: Option<&[u8]>| -> Vec<String> {
        bytes.map(string_list).unwrap_or_default().into_iter().map(str::to_string).collect()
    };
    let root_compatible = strings(root.and_then(|r| prop(r, "compatible")));
    let model = root
        .and_then(|r| prop(r, "model"))
        .and_then(|bytes| single_string("model", bytes).ok())
        .map(str::to_string);
    let hypervisor = fdt.find_node("/hypervisor").map(|node| strings(prop(node, "compatible")));
    FirmwareIdentity { root_compatible, model, hypervisor }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devtree::writer::FdtWriter;

    fn tree(root_compatible: &str, model: &str, kvm: bool) -> Vec<u8> {
        let mut w = FdtWriter::new();
        w.begin_node("").unwrap();
        w.property_string("compatible", root_compatible).unwrap();
        w.property_string("model", model).unwrap();
        if kvm {
            w.begin_node("hypervisor").unwrap();
            w.property("compatible", b"linux,kvm\0").unwrap();
            w.end_node().unwrap();
        }
        w.end_node().unwrap();
        w.finish(0).unwrap()
    }

    #[test]
    fn qemu_under_tcg_and_under_kvm() {
        let blob = tree("qemu,pseries", "IBM pSeries (emulated by qemu)", false);
        let id = firmware_identity(&Fdt::new(&blob).unwrap());
        assert_eq!(id.root_compatible, ["qemu,pseries"]);
        assert_eq!(id.model.as_deref(), Some("IBM pSeries (emulated by qemu)"));
        assert_eq!(id.hypervisor, None);
        let blob = tree("qemu,pseries", "IBM pSeries (emulated by qemu)", true);
        let id = firmware_identity(&Fdt::new(&blob).unwrap());
        assert_eq!(id.hypervisor, Some(vec!["linux,kvm".to_string()]));
    }

    #[test]
    fn a_missing_root_string_is_just_absent() {
        let mut w = FdtWriter::new();
        w.begin_node("").unwrap();
        w.property("model", b"two\0strings\0").unwrap();
        w.end_node().unwrap();
        let blob = w.finish(0).unwrap();
        let id = firmware_identity(&Fdt::new(&blob).unwrap());
        assert_eq!(id, FirmwareIdentity::default());
    }
}
