//! Capability list and extended-capability list walks, plus the kinds this kernel names.
//!
//! - Standard list (PCI Local Bus 3.0 §6.7): valid when Status bit 4 is set; the first pointer
//!   is at 0x34, each entry is `id: u8, next: u8`; the bottom two pointer bits are reserved
//!   (masked), pointers below 0x40 are invalid. IDs are from the PCI Code and ID Assignment
//!   specification. The walk is bounded by 48 entries (as Linux's `PCI_FIND_CAP_TTL`) and by a
//!   visited set, so a looping list ends.
//! - Extended list (PCIe Base 4.0 §7.6.3): starts at 0x100; each header dword holds the ID in
//!   bits 0–15, the version in 16–19 and the next offset in 20–31 (bottom two bits reserved). A
//!   header of 0 or all ones ends the list, as does a read error (QEMU answers −1 beyond the
//!   256-byte space of a conventional function).
//!
//! Devices are untrusted: every loop is bounded and a bad pointer ends the walk with a problem
//! string instead of a panic.

use alloc::{format, string::String, vec::Vec};

use super::bdf::Bdf;
use super::config::{ConfigAccess, EXTENDED_CONFIG_SPACE_SIZE};
use super::header::{CAPABILITIES_POINTER, EXTENDED_CAPABILITIES_START};

/// Upper bound on standard list entries ((256 − 64) / 4).
pub const MAX_CAPABILITIES: usize = 48;
/// Upper bound on extended list entries ((4096 − 256) / 4).
pub const MAX_EXTENDED_CAPABILITIES: usize = 960;
/// First valid standard capability offset (just past the header).
const FIRST_CAPABILITY_OFFSET: u8 = 0x40;

macro_rules! capability_kinds {
    (
        $(#[$meta:meta])*
        $name:ident($raw:ty) { $($variant:ident = $id:literal, $text:literal, $doc:literal;)* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $(#[doc = $doc] $variant,)*
            /// Any other ID.
            Other($raw),
        }

        impl $name {
            /// The kind for a raw capability ID.
            pub const fn from_id(id: $raw) -> Self {
                match id {
                    $($id => $name::$variant,)*
                    other => $name::Other(other),
                }
            }

            /// The raw capability ID.
            pub const fn id(self) -> $raw {
                match self {
                    $($name::$variant => $id,)*
                    $name::Other(other) => other,
                }
            }

            /// Short lower-case name (`None` for [`Self::Other`]).
            pub const fn name(self) -> Option<&'static str> {
                match self {
                    $($name::$variant => Some($text),)*
                    $name::Other(_) => None,
                }
            }
        }
    };
}

capability_kinds! {
    /// Standard capability IDs (PCI Code and ID Assignment 1.11 §2).
    CapabilityKind(u8) {
        PowerManagement = 0x01, "pm", "PCI Power Management (0x01).";
        Agp = 0x02, "agp", "AGP (0x02).";
        Vpd = 0x03, "vpd", "Vital Product Data (0x03).";
        SlotId = 0x04, "slotid", "Slot identification (0x04).";
        Msi = 0x05, "msi", "Message Signalled Interrupts (0x05).";
        HotSwap = 0x06, "hotswap", "CompactPCI hot swap (0x06).";
        PciX = 0x07, "pcix", "PCI-X (0x07).";
        HyperTransport = 0x08, "ht", "HyperTransport (0x08).";
        Vendor = 0x09, "vendor", "Vendor specific, e.g. virtio-pci structures (0x09).";
        DebugPort = 0x0a, "debug", "Debug port (0x0a).";
        HotPlug = 0x0c, "hotplug", "PCI hot-plug (0x0c).";
        BridgeSubsystemId = 0x0d, "ssvid", "Bridge subsystem vendor ID (0x0d).";
        PciExpress = 0x10, "pcie", "PCI Express (0x10).";
        MsiX = 0x11, "msix", "MSI-X (0x11).";
        Sata = 0x12, "sata", "SATA data/index configuration (0x12).";
        AdvancedFeatures = 0x13, "af", "Advanced features (0x13).";
        EnhancedAllocation = 0x14, "ea", "Enhanced allocation (0x14).";
    }
}

capability_kinds! {
    /// Extended capability IDs (PCI Code and ID Assignment 1.11 §3).
    ExtCapabilityKind(u16) {
        AdvancedErrorReporting = 0x0001, "aer", "Advanced Error Reporting (0x0001).";
        VirtualChannel = 0x0002, "vc", "Virtual channel (0x0002).";
        SerialNumber = 0x0003, "dsn", "Device serial number (0x0003).";
        PowerBudgeting = 0x0004, "pwrbudget", "Power budgeting (0x0004).";
        VendorSpecific = 0x000b, "vsec", "Vendor-specific extended capability (0x000b).";
        AccessControlServices = 0x000d, "acs", "Access Control Services (0x000d).";
        AlternativeRoutingId = 0x000e, "ari", "Alternative Routing-ID Interpretation (0x000e).";
        AddressTranslation = 0x000f, "ats", "Address Translation Services (0x000f).";
        SingleRootIov = 0x0010, "sriov", "Single Root I/O Virtualization (0x0010).";
        PageRequest = 0x0013, "pri", "Page Request Interface (0x0013).";
        ResizableBar = 0x0015, "rebar", "Resizable BAR (0x0015).";
        LatencyTolerance = 0x0018, "ltr", "Latency Tolerance Reporting (0x0018).";
        SecondaryPciExpress = 0x0019, "secpcie", "Secondary PCI Express (0x0019).";
        ProcessAddressSpaceId = 0x001b, "pasid", "Process Address Space ID (0x001b).";
        DownstreamPortContainment = 0x001d, "dpc", "Downstream Port Containment (0x001d).";
        L1Substates = 0x001e, "l1ss", "L1 PM substates (0x001e).";
        PrecisionTimeMeasurement = 0x001f, "ptm", "Precision Time Measurement (0x001f).";
    }
}

/// One entry of the standard capability list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Capability {
    /// What the capability is.
    pub kind: CapabilityKind,
    /// Configuration offset of its header.
    pub offset: u8,
}

/// One entry of the PCI Express extended capability list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtCapability {
    /// What the capability is.
    pub kind: ExtCapabilityKind,
    /// Capability version (header bits 16–19).
    pub version: u8,
    /// Configuration offset of its header (0x100..=0xffc).
    pub offset: u16,
}

/// Walks the standard capability list of `bdf` (the caller checks Status bit 4 first).
///
/// Stops at a 0 pointer, a pointer into the header, a revisited pointer, an all-ones entry, a
/// read error or after [`MAX_CAPABILITIES`] entries; all but the first add a problem string.
pub fn walk_capabilities(
    cfg: &mut impl ConfigAccess,
    bdf: Bdf,
    problems: &mut Vec<String>,
) -> Vec<Capability> {
    let mut capabilities = Vec::new();
    let mut pointer = match cfg.read_u8(bdf, CAPABILITIES_POINTER) {
        Ok(pointer) => pointer & 0xfc,
        Err(error) => {
            problems.push(format!("capability pointer unreadable ({error})"));
            return capabilities;
        }
    };
    let mut visited = 0u64; // one bit per dword of the 256-byte space
    while pointer != 0 {
        if pointer < FIRST_CAPABILITY_OFFSET {
            problems.push(format!("capability pointer {pointer:#04x} points into the header"));
            break;
        }
        let bit = 1u64 << (pointer / 4);
        if visited & bit != 0 || capabilities.len() >= MAX_CAPABILITIES {
            problems.push(format!("capability list loops at {pointer:#04x}"));
            break;
        }
        visited |= bit;
        let header = match cfg.read_u16(bdf, u16::from(pointer)) {
            Ok(header) => header,
            Err(error) => {
                problems.push(format!("capability at {pointer:#04x} unreadable ({error})"));
                break;
            }
        };
        let id = (header & 0xff) as u8;
        if id == 0xff {
            problems.push(format!("capability at {pointer:#04x} reads all ones"));
            break;
        }
        capabilities.push(Capability { kind: CapabilityKind::from_id(id), offset: pointer });
        pointer = ((header >> 8) as u8) & 0xfc;
    }
    capabilities
}

/// Walks the extended capability list of `bdf` from 0x100 (the caller checks that the
/// function has a PCI Express capability).
///
/// Stops at a 0 or all-ones header, a read error (silently), a 0 next pointer, or with a
/// problem string at a next pointer below 0x100, a revisited offset or after
/// [`MAX_EXTENDED_CAPABILITIES`] entries. Null entries (ID 0) are followed but not listed.
pub fn walk_extended_capabilities(
    cfg: &mut impl ConfigAccess,
    bdf: Bdf,
    problems: &mut Vec<String>,
) -> Vec<ExtCapability> {
    let mut capabilities = Vec::new();
    let mut visited = [0u64; (EXTENDED_CONFIG_SPACE_SIZE / 4 / 64) as usize];
    let mut offset = EXTENDED_CAPABILITIES_START;
    for _ in 0..MAX_EXTENDED_CAPABILITIES {
        let slot = usize::from(offset / 4);
        visited[slot / 64] |= 1 << (slot % 64);
        let Ok(header) = cfg.read_u32(bdf, offset) else {
            break;
        };
        if header == 0 || header == u32::MAX {
            break;
        }
        let id = (header & 0xffff) as u16;
        if id != 0 {
            capabilities.push(ExtCapability {
                kind: ExtCapabilityKind::from_id(id),
                version: ((header >> 16) & 0xf) as u8,
                offset,
            });
        }
        let next = ((header >> 20) & 0xffc) as u16;
        if next == 0 {
            break;
        }
        let next_slot = usize::from(next / 4);
        if next < EXTENDED_CAPABILITIES_START || visited[next_slot / 64] & (1 << (next_slot % 64)) != 0 {
            problems.push(format!("extended capability list loops or escapes at {next:#05x}"));
            break;
        }
        offset = next;
    }
    capabilities
}
