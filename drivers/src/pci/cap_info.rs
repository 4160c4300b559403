//! Parsed contents of the MSI-X and SR-IOV capabilities.
//!
//! - MSI-X (PCI Local Bus 3.0 §6.8.2; PCIe Base 4.0 §7.7.2): Message Control at +0x02 with the
//!   table size minus one in bits 0–10; Table Offset/BIR at +0x04 and PBA Offset/BIR at +0x08,
//!   each holding the BAR indicator in bits 0–2 and a dword-aligned offset in the rest.
//! - SR-IOV (PCIe Base 4.0 §9.3.3): InitialVFs at +0x0c, TotalVFs +0x0e, NumVFs +0x10, First
//!   VF Offset +0x14, VF Stride +0x16, VF Device ID +0x1a (all 16 bits).

use super::bdf::Bdf;
use super::config::{ConfigAccess, ConfigError};

/// Where the MSI-X table and pending-bit array live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MsixInfo {
    /// Number of table entries (1..=2048).
    pub table_size: u16,
    /// BAR index (BIR) holding the table; 6 and 7 are reserved values.
    pub table_bar: u8,
    /// Offset of the table inside that BAR.
    pub table_offset: u32,
    /// BAR index (BIR) holding the pending-bit array.
    pub pba_bar: u8,
    /// Offset of the pending-bit array inside that BAR.
    pub pba_offset: u32,
}

/// The SR-IOV capability's VF counts and routing-ID layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SriovInfo {
    /// TotalVFs: the most VFs the PF can expose.
    pub total_vfs: u16,
    /// InitialVFs: VFs initially associated with the PF.
    pub initial_vfs: u16,
    /// NumVFs: VFs currently configured.
    pub num_vfs: u16,
    /// First VF Offset: routing-ID offset of VF 1 from the PF.
    pub vf_offset: u16,
    /// VF Stride: routing-ID distance between consecutive VFs.
    pub vf_stride: u16,
    /// VF Device ID.
    pub vf_device_id: u16,
}

/// MSI-X Message Control offset within the capability.
const MSIX_CONTROL: u16 = 0x02;
/// MSI-X Table Offset/BIR offset within the capability.
const MSIX_TABLE: u16 = 0x04;
/// MSI-X PBA Offset/BIR offset within the capability.
const MSIX_PBA: u16 = 0x08;
/// Table size field of Message Control.
const MSIX_TABLE_SIZE_MASK: u16 = 0x7ff;
/// BIR field of the Table/PBA registers.
const BIR_MASK: u32 = 0x7;

/// Reads the MSI-X capability whose header is at `offset`.
pub fn read_msix(cfg: &mut impl ConfigAccess, bdf: Bdf, offset: u16) -> Result<MsixInfo, ConfigError> {
    let control = cfg.read_u16(bdf, field(offset, MSIX_CONTROL)?)?;
    let table = cfg.read_u32(bdf, field(offset, MSIX_TABLE)?)?;
    let pba = cfg.read_u32(bdf, field(offset, MSIX_PBA)?)?;
    Ok(MsixInfo {
        table_size: (control & MSIX_TABLE_SIZE_MASK) + 1,
        table_bar: (table & BIR_MASK) as u8,
        table_offset: table & !BIR_MASK,
        pba_bar: (pba & BIR_MASK) as u8,
        pba_offset: pba & !BIR_MASK,
    })
}

/// Reads the SR-IOV extended capability whose header is at `offset`.
pub fn read_sriov(cfg: &mut impl ConfigAccess, bdf: Bdf, offset: u16) -> Result<SriovInfo, ConfigError> {
    Ok(SriovInfo {
        initial_vfs: cfg.read_u16(bdf, field(offset, 0x0c)?)?,
        total_vfs: cfg.read_u16(bdf, field(offset, 0x0e)?)?,
        num_vfs: cfg.read_u16(bdf, field(offset, 0x10)?)?,
        vf_offset: cfg.read_u16(bdf, field(offset, 0x14)?)?,
        vf_stride: cfg.read_u16(bdf, field(offset, 0x16)?)?,
        vf_device_id: cfg.read_u16(bdf, field(offset, 0x1a)?)?,
    })
}

/// Offset of the field `relative` bytes into the capability at `offset`; fields past the end of
/// configuration space are left for the accessor to reject, an overflowing offset is
/// [`ConfigError::BadOffset`].
fn field(offset: u16, relative: u16) -> Result<u16, ConfigError> {
    offset.checked_add(relative).ok_or(ConfigError::BadOffset)
}
