//! The NVMe vocabulary this driver uses: controller registers, command and completion layouts,
//! status codes. Section numbers are those of the NVM Express Base Specification 2.0 (and the
//! NVM Command Set Specification 1.0 for Read/Write/Identify Namespace); the behaviour relied
//! on was checked against QEMU 7.2's `hw/nvme/ctrl.c` (`nvme_ctrl_reset`, `nvme_start_ctrl`,
//! `nvme_process_db`, `nvme_map_prp`, `nvme_create_sq`, `nvme_create_cq`).

use core::fmt;

/// Controller Capabilities, 64 bits (§3.1.3.1).
pub const REG_CAP: usize = 0x00;
/// Version (§3.1.3.2).
pub const REG_VS: usize = 0x08;
/// Interrupt Mask Set (§3.1.3.3): all ones masks pin-based/MSI vectors (no MSI-X here).
pub const REG_INTMS: usize = 0x0c;
/// Controller Configuration (§3.1.3.5).
pub const REG_CC: usize = 0x14;
/// Controller Status (§3.1.3.6).
pub const REG_CSTS: usize = 0x1c;
/// Admin Queue Attributes (§3.1.3.8).
pub const REG_AQA: usize = 0x24;
/// Admin Submission Queue base, 64 bits (§3.1.3.9).
pub const REG_ASQ: usize = 0x28;
/// Admin Completion Queue base, 64 bits (§3.1.3.10).
pub const REG_ACQ: usize = 0x30;
/// First doorbell (§3.1.3.26: SQ y tail at 0x1000 + 2y × stride, CQ y head one stride on).
pub const REG_DOORBELLS: usize = 0x1000;

/// CC.EN (bit 0).
pub const CC_EN: u32 = 1;
/// CC.IOSQES = 6 (64-byte submission entries, bits 19:16) and CC.IOCQES = 4 (16-byte
/// completion entries, bits 23:20); CSS = 0 (NVM command set), MPS = 0 (4 KiB pages),
/// AMS = 0 (round robin).
pub const CC_ENTRY_SIZES: u32 = (6 << 16) | (4 << 20);
/// CSTS.RDY (bit 0).
pub const CSTS_RDY: u32 = 1;
/// CSTS.CFS, controller fatal status (bit 1).
pub const CSTS_CFS: u32 = 1 << 1;

/// The memory page size this driver configures (CC.MPS = 0).
pub const PAGE: u64 = 4096;
/// Bytes per submission queue entry.
pub const SQE_BYTES: usize = 64;
/// Bytes per completion queue entry.
pub const CQE_BYTES: usize = 16;

/// What CAP says (§3.1.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Maximum queue entries supported (CAP.MQES is 0-based; this is the count).
    pub max_queue_entries: u32,
    /// Worst-case time for CSTS.RDY to follow CC.EN, in milliseconds (CAP.TO × 500 ms).
    pub timeout_ms: u64,
    /// Doorbell stride in bytes (4 << CAP.DSTRD).
    pub doorbell_stride: usize,
    /// The NVM command set is supported (CAP.CSS bit 0).
    pub nvm_command_set: bool,
    /// Smallest memory page size, in bytes (2^(12 + CAP.MPSMIN)).
    pub min_page: u64,
}

impl Capabilities {
    /// Decodes CAP.
    pub fn parse(cap: u64) -> Self {
        Self {
            max_queue_entries: (cap & 0xffff) as u32 + 1,
            timeout_ms: ((cap >> 24) & 0xff) * 500,
            doorbell_stride: 4 << ((cap >> 32) & 0xf),
            nvm_command_set: (cap >> 37) & 1 == 1,
            min_page: 1 << (12 + ((cap >> 48) & 0xf)),
        }
    }
}

/// Admin opcodes (§5, Figure 139).
pub mod admin {
    /// Delete I/O Submission Queue.
    pub const DELETE_SQ: u8 = 0x00;
    /// Create I/O Submission Queue (§5.5).
    pub const CREATE_SQ: u8 = 0x01;
    /// Delete I/O Completion Queue.
    pub const DELETE_CQ: u8 = 0x04;
    /// Create I/O Completion Queue (§5.4).
    pub const CREATE_CQ: u8 = 0x05;
    /// Identify (§5.17).
    pub const IDENTIFY: u8 = 0x06;
    /// Set Features (§5.27).
    pub const SET_FEATURES: u8 = 0x09;
    /// Feature: Number of Queues (§5.27.1.5).
    pub const FEATURE_NUMBER_OF_QUEUES: u32 = 0x07;
    /// Identify CNS: the namespace (NVM Command Set spec §4.1.5.1).
    pub const CNS_NAMESPACE: u32 = 0x00;
    /// Identify CNS: the controller (§5.17.2.1).
    pub const CNS_CONTROLLER: u32 = 0x01;
}

/// NVM command set I/O opcodes (NVM Command Set Specification 1.0, §3).
pub mod io {
    /// Flush.
    pub const FLUSH: u8 = 0x00;
    /// Write.
    pub const WRITE: u8 = 0x01;
    /// Read.
    pub const READ: u8 = 0x02;
}

/// One submission queue entry (§4.2, Figure 88): the dwords as they go to memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// Opcode.
    pub opcode: u8,
    /// Command identifier (unique among the queue's outstanding commands).
    pub cid: u16,
    /// Namespace.
    pub nsid: u32,
    /// PRP entry 1 (a bus address).
    pub prp1: u64,
    /// PRP entry 2 (a bus address: the second page, or the PRP list).
    pub prp2: u64,
    /// Command dwords 10 to 15.
    pub cdw: [u32; 6],
}

impl Command {
    /// The 16 dwords (PSDT = 0: PRPs; FUSE = 0).
    pub fn dwords(&self) -> [u32; 16] {
        let mut d = [0u32; 16];
        d[0] = u32::from(self.opcode) | (u32::from(self.cid) << 16);
        d[1] = self.nsid;
        d[6] = self.prp1 as u32;
        d[7] = (self.prp1 >> 32) as u32;
        d[8] = self.prp2 as u32;
        d[9] = (self.prp2 >> 32) as u32;
        d[10..16].copy_from_slice(&self.cdw);
        d
    }

    /// The entry read back from its dwords (used by the host tests' controller).
    pub fn from_dwords(d: &[u32; 16]) -> Self {
        let mut cdw = [0; 6];
        cdw.copy_from_slice(&d[10..16]);
        Self {
            opcode: d[0] as u8,
            cid: (d[0] >> 16) as u16,
            nsid: d[1],
            prp1: u64::from(d[6]) | (u64::from(d[7]) << 32),
            prp2: u64::from(d[8]) | (u64::from(d[9]) << 32),
            cdw,
        }
    }
}

/// A completion queue entry (§4.6, Figure 89).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Dword 0: command specific result.
    pub result: u32,
    /// Submission queue head pointer.
    pub sq_head: u16,
    /// Submission queue identifier.
    pub sq_id: u16,
    /// Command identifier.
    pub cid: u16,
    /// The phase tag.
    pub phase: bool,
    /// The status field.
    pub status: Status,
}

impl Completion {
    /// Decodes dwords 0, 2 and 3.
    pub fn parse(dw0: u32, dw2: u32, dw3: u32) -> Self {
        Self {
            result: dw0,
            sq_head: dw2 as u16,
            sq_id: (dw2 >> 16) as u16,
            cid: dw3 as u16,
            phase: (dw3 >> 16) & 1 == 1,
            status: Status((dw3 >> 17) as u16),
        }
    }

    /// Dword 3 for a completion (the host tests' controller writes it).
    pub fn dw3(cid: u16, phase: bool, status: Status) -> u32 {
        u32::from(cid) | (u32::from(phase) << 16) | (u32::from(status.0) << 17)
    }
}

/// The 15-bit status field (§4.6.1, Figure 92): SC in bits 7:0, SCT in 10:8, DNR in 14.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status(pub u16);

impl Status {
    /// Successful completion.
    pub const SUCCESS: Status = Status(0);

    /// Status code type.
    pub fn sct(self) -> u8 {
        ((self.0 >> 8) & 0x7) as u8
    }

    /// Status code.
    pub fn sc(self) -> u8 {
        self.0 as u8
    }

    /// Whether the command succeeded.
    pub fn is_success(self) -> bool {
        self.sct() == 0 && self.sc() == 0
    }

    /// Generic status codes' names (§4.6.1.2.1, Figure 94); others are given by number.
    pub fn name(self) -> Option<&'static str> {
        let name = match (self.sct(), self.sc()) {
            (0, 0x00) => "Successful Completion",
            (0, 0x01) => "Invalid Command Opcode",
            (0, 0x02) => "Invalid Field in Command",
            (0, 0x03) => "Command ID Conflict",
            (0, 0x04) => "Data Transfer Error",
            (0, 0x06) => "Internal Error",
            (0, 0x07) => "Command Abort Requested",
            (0, 0x0b) => "Invalid Namespace or Format",
            (0, 0x13) => "PRP Offset Invalid",
            (0, 0x80) => "LBA Out of Range",
            (0, 0x81) => "Capacity Exceeded",
            (0, 0x82) => "Namespace Not Ready",
            (1, 0x01) => "Invalid Queue Identifier",
            (1, 0x02) => "Invalid Queue Size",
            (1, 0x08) => "Invalid Interrupt Vector",
            (2, 0x80) => "Write Fault",
            (2, 0x81) => "Unrecovered Read Error",
            _ => return None,
        };
        Some(name)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "status type {:#x} code {:#04x}", self.sct(), self.sc())?;
        if let Some(name) = self.name() {
            write!(f, " ({name})")?;
        }
        if self.0 & (1 << 14) != 0 {
            write!(f, ", do not retry")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_of_qemu_7_2() {
        // QEMU 7.2 nvme_init_ctrl: MQES 0x7ff, CQR, TO 0xf, CSS NVM, MPSMAX 4 (64 KiB).
        let cap = 0x7ff | 1 << 16 | 0xf << 24 | 1u64 << 37 | 4u64 << 52;
        let caps = Capabilities::parse(cap);
        assert_eq!(caps.max_queue_entries, 2048);
        assert_eq!(caps.timeout_ms, 7500);
        assert_eq!(caps.doorbell_stride, 4);
        assert!(caps.nvm_command_set);
        assert_eq!(caps.min_page, 4096);
    }

    #[test]
    fn commands_and_completions_round_trip() {
        let c = Command {
            opcode: 2,
            cid: 0x1234,
            nsid: 1,
            prp1: 1 << 59 | 0x1000,
            prp2: 7,
            cdw: [1, 2, 3, 0, 0, 0],
        };
        let d = c.dwords();
        assert_eq!(d[0], 0x1234_0002);
        assert_eq!((d[6], d[7]), (0x1000, 0x0800_0000));
        assert_eq!(Command::from_dwords(&d), c);
        let status = Status(0x0102 | 1 << 14);
        let done = Completion::parse(9, 0x0003_0005, Completion::dw3(0x42, true, status));
        assert_eq!((done.result, done.sq_head, done.sq_id, done.cid, done.phase), (9, 5, 3, 0x42, true));
        assert_eq!(done.status, status);
        assert_eq!(status.to_string(), "status type 0x1 code 0x02 (Invalid Queue Size), do not retry");
        assert!(Status::SUCCESS.is_success() && !status.is_success());
        assert_eq!(Status(0x0080).to_string(), "status type 0x0 code 0x80 (LBA Out of Range)");
    }
}
