//! Controller bring-up, Identify, I/O queue pairs, transfers and shutdown.
//!
//! Bring-up follows Base Specification 2.0 §3.5.1 ("Memory-based Controller Initialization"):
//! disable (CC.EN = 0, wait for CSTS.RDY = 0), mask interrupts, set the admin queues (AQA,
//! ASQ, ACQ), enable with 64/16-byte entries and 4 KiB pages, wait for CSTS.RDY = 1 (at most
//! CAP.TO × 500 ms each way; CSTS.CFS is fatal), Identify the controller (§5.17.2.1) and its
//! namespaces (NVM Command Set 1.0 §4.1.5.1), ask for I/O queues with Set Features "Number
//! of Queues" (§5.27.1.5) and create each pair, completion queue first (§5.4, §5.5), both
//! physically contiguous (PC = 1) and without interrupts (IEN = 0). Shutdown (§3.6.1) sets
//! CC.SHN, waits for CSTS.SHST = complete, disables, and only then gives the memory back.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use super::prp::{plan, PrpError, PrpPlan, MAX_TRANSFER};
use super::queue::{queue_bytes, QueuePair};
use super::spec::{
    admin, io, Capabilities, Command, Completion, Status, CC_EN, CC_ENTRY_SIZES, CQE_BYTES, CSTS_CFS,
    CSTS_RDY, PAGE, REG_ACQ, REG_AQA, REG_ASQ, REG_CAP, REG_CC, REG_CSTS, REG_INTMS, REG_VS, SQE_BYTES,
};
use super::{DeviceMemory, NvmeEnv, NvmeRegs};
use crate::addr::BusAddr;

/// What to ask of the controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// I/O queue pairs wanted (the controller may grant fewer).
    pub io_queues: u16,
    /// Entries per I/O queue wanted (capped by CAP.MQES).
    pub io_depth: u16,
    /// Entries per admin queue.
    pub admin_depth: u16,
    /// How long one command may take, in microseconds.
    pub command_timeout_us: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self { io_queues: 2, io_depth: 64, admin_depth: 16, command_timeout_us: 10_000_000 }
    }
}

/// A read or a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoOp {
    /// Device to memory.
    Read,
    /// Memory to device.
    Write,
}

impl IoOp {
    fn opcode(self) -> u8 {
        match self {
            IoOp::Read => io::READ,
            IoOp::Write => io::WRITE,
        }
    }

    /// "Read" or "Write".
    pub fn name(self) -> &'static str {
        match self {
            IoOp::Read => "Read",
            IoOp::Write => "Write",
        }
    }
}

/// What Identify Controller said (§5.17.2.1, Figure 275).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The VS register (major in bits 31:16, minor 15:8).
    pub version: u32,
    /// PCI vendor ID (bytes 1:0).
    pub vendor: u16,
    /// Serial number (bytes 23:4), trimmed.
    pub serial: String,
    /// Model number (bytes 63:24), trimmed.
    pub model: String,
    /// Firmware revision (bytes 71:64), trimmed.
    pub firmware: String,
    /// Maximum data transfer size (byte 77): 2^MDTS minimum pages, 0 for no limit.
    pub mdts: u8,
    /// Number of namespaces (bytes 519:516).
    pub namespaces: u32,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim_matches(|c: char| c == ' ' || c == '\0').to_string()
}

fn le32(data: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

fn le64(data: &[u8], at: usize) -> u64 {
    u64::from(le32(data, at)) | (u64::from(le32(data, at + 4)) << 32)
}

impl Identity {
    /// Decodes the 4 KiB Identify Controller data.
    pub fn parse(version: u32, data: &[u8; 4096]) -> Self {
        Self {
            version,
            vendor: u16::from_le_bytes([data[0], data[1]]),
            serial: text(&data[4..24]),
            model: text(&data[24..64]),
            firmware: text(&data[64..72]),
            mdts: data[77],
            namespaces: le32(data, 516),
        }
    }
}

/// The namespace in use (NVM Command Set 1.0, Identify Namespace, Figure 97).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Namespace {
    /// Its identifier.
    pub id: u32,
    /// Size in logical blocks (NSZE).
    pub blocks: u64,
    /// Bytes per logical block (2^LBADS of the format FLBAS selects).
    pub block_bytes: u32,
}

impl Namespace {
    /// Decodes Identify Namespace data; `Ok(None)` for an inactive namespace (NSZE = 0).
    pub fn parse(id: u32, data: &[u8; 4096]) -> Result<Option<Self>, NvmeError> {
        let blocks = le64(data, 0);
        if blocks == 0 {
            return Ok(None);
        }
        let flbas = data[26];
        let format = le32(data, 128 + 4 * usize::from(flbas & 0xf));
        let (metadata, lbads) = (format & 0xffff, (format >> 16) & 0xff);
        if !(9..=12).contains(&lbads) {
            return Err(NvmeError::Unsupported(format!(
                "namespace {id} has 2^{lbads}-byte logical blocks; this driver takes 512 to 4096"
            )));
        }
        if metadata != 0 && flbas & 0x10 != 0 {
            return Err(NvmeError::Unsupported(format!(
                "namespace {id} interleaves {metadata} bytes of metadata with each block"
            )));
        }
        Ok(Some(Self { id, blocks, block_bytes: 1 << lbads }))
    }

    /// Capacity in bytes.
    pub fn bytes(&self) -> u64 {
        self.blocks * u64::from(self.block_bytes)
    }
}

/// What went wrong, in words that name the register, the command and its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NvmeError {
    /// The controller lacks something this driver needs.
    Unsupported(String),
    /// CSTS.RDY did not follow CC.EN in time.
    NotReady {
        /// `enable`, `disable` or `shutdown`.
        what: &'static str,
        /// How long it was given (CAP.TO).
        waited_ms: u64,
        /// CSTS at the end.
        csts: u32,
    },
    /// CSTS.CFS: the controller reported a fatal error.
    Fatal {
        /// What was under way.
        during: String,
        /// CSTS.
        csts: u32,
    },
    /// A command completed with an error status.
    Command {
        /// The command, in words.
        command: String,
        /// Its status.
        status: Status,
    },
    /// A command did not complete in time.
    Timeout {
        /// The command, in words.
        command: String,
        /// Its queue.
        queue: u16,
        /// How long it was given.
        waited_ms: u64,
    },
    /// Memory for the controller could not be had or given back.
    Memory(String),
    /// A transfer's data cannot be described by PRPs.
    Prp {
        /// The command.
        command: String,
        /// Why.
        error: PrpError,
    },
    /// No namespace is active.
    NoNamespace {
        /// Namespaces the controller has (NN).
        namespaces: u32,
    },
    /// A transfer outside the namespace or not in whole blocks.
    BadRequest(String),
}

impl fmt::Display for NvmeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NvmeError::Unsupported(why) => write!(f, "NVMe controller unsupported: {why}"),
            NvmeError::NotReady { what: "shutdown", waited_ms, csts } => write!(
                f,
                "the NVMe controller did not report its shutdown complete (CSTS.SHST) within {waited_ms} ms \
                 after CC.SHN (CSTS {csts:#x})"
            ),
            NvmeError::NotReady { what, waited_ms, csts } => write!(
                f,
                "the NVMe controller did not become {} within {waited_ms} ms after CC.EN={} (CSTS {csts:#x})",
                if *what == "enable" { "ready" } else { "disabled" },
                u8::from(*what == "enable")
            ),
            NvmeError::Fatal { during, csts } => {
                write!(
                    f,
                    "the NVMe controller reported a fatal error (CSTS.CFS, CSTS {csts:#x}) during {during}"
                )
            }
            NvmeError::Command { command, status } => write!(f, "NVMe {command} failed: {status}"),
            NvmeError::Timeout { command, queue, waited_ms } => {
                write!(f, "NVMe {command} on queue {queue} did not complete within {waited_ms} ms")
            }
            NvmeError::Memory(why) => write!(f, "NVMe queue memory: {why}"),
            NvmeError::Prp { command, error } => write!(f, "NVMe {command}: {error}"),
            NvmeError::NoNamespace { namespaces } => {
                write!(f, "the NVMe controller has no active namespace (it reports {namespaces})")
            }
            NvmeError::BadRequest(why) => write!(f, "NVMe request refused: {why}"),
        }
    }
}

/// Empty polls between looks at the clock and at CSTS: under emulation each timebase or
/// register read leaves the translated code (QEMU reads its clock, or takes the device's lock
/// that its I/O threads need), so a wait spends its time reading the completion queue, which
/// is plain memory, and checks the rest only now and then.
pub const CHECK_EVERY: u32 = 1024;

/// Counts empty polls; [`Spin::due`] says when to look at the clock again.
#[derive(Default)]
pub struct Spin(u32);

impl Spin {
    /// Counts one empty poll; true every [`CHECK_EVERY`] of them.
    pub fn due(&mut self) -> bool {
        self.0 = self.0.wrapping_add(1);
        self.0.is_multiple_of(CHECK_EVERY)
    }
}

/// A command submitted and not yet completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Its I/O queue (index into the driver's queues, 0-based).
    pub queue: usize,
    /// Its command identifier.
    pub cid: u16,
}

/// A polled NVMe controller with one active namespace.
pub struct Controller<R: NvmeRegs, E: NvmeEnv> {
    regs: R,
    env: E,
    caps: Capabilities,
    config: Config,
    admin: Option<QueuePair<E::Memory>>,
    io: Vec<QueuePair<E::Memory>>,
    buffer: Option<E::Memory>,
    identity: Identity,
    namespace: Namespace,
    max_transfer: u64,
    next_queue: usize,
    commands: u64,
    done: Vec<Completion>,
}

impl<R: NvmeRegs, E: NvmeEnv> Controller<R, E> {
    /// Resets and enables the controller, identifies it and its first active namespace and
    /// creates the I/O queue pairs. On failure the controller is disabled and its memory
    /// given back (or, if it would not disable, kept out of use: dropped, never freed).
    pub fn start(regs: R, env: E, config: Config) -> Result<Self, NvmeError> {
        let mut this = Self {
            regs,
            env,
            caps: Capabilities::parse(0),
            config,
            admin: None,
            io: Vec::new(),
            buffer: None,
            identity: Identity::default(),
            namespace: Namespace::default(),
            max_transfer: 0,
            next_queue: 0,
            commands: 0,
            done: Vec::new(),
        };
        match this.bring_up() {
            Ok(()) => Ok(this),
            Err(error) => {
                // Whatever the controller was given stays out of use unless it is disabled.
                let _ = this.release();
                Err(error)
            }
        }
    }

    fn bring_up(&mut self) -> Result<(), NvmeError> {
        self.caps = Capabilities::parse(self.regs.read64(REG_CAP));
        if !self.caps.nvm_command_set {
            return Err(NvmeError::Unsupported("CAP.CSS does not offer the NVM command set".into()));
        }
        if self.caps.min_page > PAGE {
            return Err(NvmeError::Unsupported(format!(
                "its smallest memory page is {} bytes (CAP.MPSMIN); this driver uses 4096",
                self.caps.min_page
            )));
        }
        self.disable()?;
        self.regs.write32(REG_INTMS, u32::MAX);
        let depth = self.config.admin_depth.clamp(2, 4096).min(self.caps.max_queue_entries as u16);
        let sq = self.alloc(queue_bytes(depth, SQE_BYTES))?;
        let cq = self.alloc(queue_bytes(depth, CQE_BYTES))?;
        let admin = QueuePair::new(0, depth, sq, cq, None, self.caps.doorbell_stride);
        let size = u32::from(depth - 1);
        self.regs.write32(REG_AQA, (size << 16) | size);
        self.regs.write64(REG_ASQ, admin.sq_bus());
        self.regs.write64(REG_ACQ, admin.cq_bus());
        self.admin = Some(admin);
        self.regs.write32(REG_CC, CC_ENTRY_SIZES | CC_EN);
        self.wait_ready(true)?;
        self.buffer = Some(self.alloc(PAGE as usize)?);

        let version = self.regs.read32(REG_VS);
        let data = self.identify("Identify Controller", admin::CNS_CONTROLLER, 0)?;
        self.identity = Identity::parse(version, &data);
        let mut found = None;
        for id in 1..=self.identity.namespaces.min(64) {
            let data = self.identify(&format!("Identify Namespace {id}"), admin::CNS_NAMESPACE, id)?;
            if let Some(namespace) = Namespace::parse(id, &data)? {
                found = Some(namespace);
                break;
            }
        }
        self.namespace = found.ok_or(NvmeError::NoNamespace { namespaces: self.identity.namespaces })?;
        self.max_transfer = match self.identity.mdts {
            0 => MAX_TRANSFER,
            mdts => (self.caps.min_page << mdts.min(20)).min(MAX_TRANSFER),
        };

        let wanted = self.config.io_queues.max(1);
        let ask = u32::from(wanted - 1);
        let command = Command {
            opcode: admin::SET_FEATURES,
            cdw: [admin::FEATURE_NUMBER_OF_QUEUES, (ask << 16) | ask, 0, 0, 0, 0],
            ..Command::default()
        };
        let granted = self.admin_command("Set Features (Number of Queues)", command, None)?.result;
        let queues = wanted.min((granted & 0xffff) as u16 + 1).min((granted >> 16) as u16 + 1);
        let depth = self.config.io_depth.clamp(2, 4096).min(self.caps.max_queue_entries as u16);
        for id in 1..=queues {
            self.create_io_queue(id, depth)?;
        }
        Ok(())
    }

    fn alloc(&mut self, bytes: usize) -> Result<E::Memory, NvmeError> {
        self.env.alloc(bytes).map_err(NvmeError::Memory)
    }

    fn create_io_queue(&mut self, id: u16, depth: u16) -> Result<(), NvmeError> {
        let sq = self.alloc(queue_bytes(depth, SQE_BYTES))?;
        let cq = self.alloc(queue_bytes(depth, CQE_BYTES))?;
        let lists = self.alloc(usize::from(depth) * PAGE as usize)?;
        let pair = QueuePair::new(id, depth, sq, cq, Some(lists), self.caps.doorbell_stride);
        let size = (u32::from(depth - 1) << 16) | u32::from(id);
        let (sq_bus, cq_bus) = (pair.sq_bus(), pair.cq_bus());
        // Pushed before the commands so that a failure still frees its memory on release.
        self.io.push(pair);
        let create_cq =
            Command { opcode: admin::CREATE_CQ, cdw: [size, 1, 0, 0, 0, 0], ..Command::default() };
        let plan = PrpPlan { prp1: cq_bus, prp2: super::prp::Prp2::Unused };
        self.admin_command(&format!("Create I/O Completion Queue {id}"), create_cq, Some(&plan))?;
        let create_sq = Command {
            opcode: admin::CREATE_SQ,
            cdw: [size, (u32::from(id) << 16) | 1, 0, 0, 0, 0],
            ..Command::default()
        };
        let plan = PrpPlan { prp1: sq_bus, prp2: super::prp::Prp2::Unused };
        self.admin_command(&format!("Create I/O Submission Queue {id}"), create_sq, Some(&plan))?;
        Ok(())
    }

    fn identify(&mut self, name: &str, cns: u32, nsid: u32) -> Result<[u8; 4096], NvmeError> {
        let bus = self
            .buffer
            .as_ref()
            .map(|b| b.bus().get())
            .ok_or_else(|| NvmeError::Memory("no buffer".into()))?;
        let command =
            Command { opcode: admin::IDENTIFY, nsid, cdw: [cns, 0, 0, 0, 0, 0], ..Command::default() };
        let plan = PrpPlan { prp1: bus, prp2: super::prp::Prp2::Unused };
        self.admin_command(name, command, Some(&plan))?;
        let mut data = [0u8; 4096];
        if let Some(buffer) = self.buffer.as_ref() {
            for (k, chunk) in data.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&buffer.read_u32(4 * k).to_le_bytes());
            }
        }
        Ok(data)
    }

    fn admin_command(
        &mut self,
        name: &str,
        command: Command,
        prp: Option<&PrpPlan>,
    ) -> Result<Completion, NvmeError> {
        let none = PrpPlan { prp1: 0, prp2: super::prp::Prp2::Unused };
        let admin = self.admin.as_mut().ok_or_else(|| NvmeError::Memory("no admin queue".into()))?;
        let cid = admin
            .submit(&mut self.regs, command, prp.unwrap_or(&none))
            .ok_or_else(|| NvmeError::BadRequest(format!("{name}: the admin queue is full")))?;
        let start = self.env.now_us();
        let mut spin = Spin::default();
        loop {
            self.done.clear();
            if let Some(admin) = self.admin.as_mut() {
                admin.drain(&mut self.regs, &mut self.done);
            }
            if let Some(done) = self.done.iter().find(|c| c.cid == cid) {
                return match done.status.is_success() {
                    true => Ok(*done),
                    false => Err(NvmeError::Command { command: name.to_string(), status: done.status }),
                };
            }
            if !spin.due() {
                core::hint::spin_loop();
                continue;
            }
            self.check_fatal(name)?;
            if self.env.now_us().saturating_sub(start) > self.config.command_timeout_us {
                let waited_ms = self.config.command_timeout_us / 1000;
                return Err(NvmeError::Timeout { command: name.to_string(), queue: 0, waited_ms });
            }
            core::hint::spin_loop();
        }
    }

    fn check_fatal(&mut self, during: &str) -> Result<(), NvmeError> {
        let csts = self.regs.read32(REG_CSTS);
        match csts != u32::MAX && csts & CSTS_CFS != 0 {
            true => Err(NvmeError::Fatal { during: during.to_string(), csts }),
            false => Ok(()),
        }
    }

    /// Waits for CSTS.RDY to equal `ready`, at most CAP.TO (at least 500 ms).
    fn wait_ready(&mut self, ready: bool) -> Result<(), NvmeError> {
        let what = if ready { "enable" } else { "disable" };
        let limit_ms = self.caps.timeout_ms.max(500);
        let start = self.env.now_us();
        loop {
            let csts = self.regs.read32(REG_CSTS);
            if ready && csts != u32::MAX && csts & CSTS_CFS != 0 {
                return Err(NvmeError::Fatal { during: "enable".into(), csts });
            }
            if csts != u32::MAX && (csts & CSTS_RDY != 0) == ready {
                return Ok(());
            }
            if self.env.now_us().saturating_sub(start) > limit_ms * 1000 {
                return Err(NvmeError::NotReady { what, waited_ms: limit_ms, csts });
            }
            core::hint::spin_loop();
        }
    }

    fn disable(&mut self) -> Result<(), NvmeError> {
        self.regs.write32(REG_CC, 0);
        self.wait_ready(false)
    }

    /// Disables the controller, then gives every queue back; if it would not disable, the
    /// memory is dropped without being freed (a mapping dropped that way is kept out of use).
    fn release(&mut self) -> Result<(), NvmeError> {
        let disabled = self.disable();
        let memory: Vec<E::Memory> = self
            .io
            .drain(..)
            .chain(self.admin.take())
            .flat_map(QueuePair::into_memory)
            .chain(self.buffer.take())
            .collect();
        disabled?;
        let mut first = Ok(());
        for m in memory {
            if let Err(why) = self.env.free(m) {
                first = first.and(Err(NvmeError::Memory(why)));
            }
        }
        first
    }

    /// Shuts the controller down (CC.SHN normal, §3.6.1), disables it and gives its memory
    /// back; returns the environment.
    pub fn shutdown(mut self) -> Result<E, NvmeError> {
        let cc = self.regs.read32(REG_CC);
        self.regs.write32(REG_CC, (cc & !(3 << 14)) | (1 << 14));
        let start = self.env.now_us();
        let limit_ms = self.caps.timeout_ms.max(500);
        let mut shut_down = false;
        while self.env.now_us().saturating_sub(start) <= limit_ms * 1000 {
            if (self.regs.read32(REG_CSTS) >> 2) & 3 == 2 {
                shut_down = true;
                break;
            }
            core::hint::spin_loop();
        }
        self.release()?;
        match shut_down {
            true => Ok(self.env),
            false => Err(NvmeError::NotReady {
                what: "shutdown",
                waited_ms: limit_ms,
                csts: self.regs.read32(REG_CSTS),
            }),
        }
    }

    /// The controller's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The namespace in use.
    pub fn namespace(&self) -> Namespace {
        self.namespace
    }

    /// I/O queue pairs created.
    pub fn io_queues(&self) -> usize {
        self.io.len()
    }

    /// Entries per I/O queue; at most one fewer commands are outstanding per queue.
    pub fn io_depth(&self) -> u16 {
        self.io.first().map_or(0, QueuePair::depth)
    }

    /// The largest transfer of one command (MDTS, and one PRP list page).
    pub fn max_transfer(&self) -> u64 {
        self.max_transfer
    }

    /// I/O commands submitted so far.
    pub fn commands(&self) -> u64 {
        self.commands
    }

    /// The bus addresses of the admin and I/O queues, `(id, sq, cq)`, for the report.
    pub fn queue_addresses(&self) -> Vec<(u16, u64, u64)> {
        self.admin.iter().chain(&self.io).map(|q| (q.id, q.sq_bus(), q.cq_bus())).collect()
    }

    /// The environment (for its DMA handle).
    pub fn env(&mut self) -> &mut E {
        &mut self.env
    }

    fn describe(op: IoOp, lba: u64, blocks: u64) -> String {
        format!("{} of {blocks} blocks at LBA {lba}", op.name())
    }

    /// Submits one command: `blocks` blocks at `lba` to or from `bus` (mapped, contiguous in
    /// bus space, at most [`Controller::max_transfer`] bytes), on I/O queue `queue`. `Ok(None)`
    /// when that queue is full.
    pub fn submit(
        &mut self,
        queue: usize,
        op: IoOp,
        lba: u64,
        blocks: u64,
        bus: BusAddr,
    ) -> Result<Option<Pending>, NvmeError> {
        let what = || Self::describe(op, lba, blocks);
        let bytes = blocks * u64::from(self.namespace.block_bytes);
        if blocks == 0 || lba.checked_add(blocks).is_none_or(|end| end > self.namespace.blocks) {
            return Err(NvmeError::BadRequest(format!(
                "{}: the namespace has {} blocks",
                what(),
                self.namespace.blocks
            )));
        }
        if bytes > self.max_transfer {
            return Err(NvmeError::BadRequest(format!(
                "{}: {bytes} bytes exceed the {}-byte maximum transfer",
                what(),
                self.max_transfer
            )));
        }
        let prp = plan(bus.get(), bytes).map_err(|error| NvmeError::Prp { command: what(), error })?;
        let command = Command {
            opcode: op.opcode(),
            nsid: self.namespace.id,
            cdw: [lba as u32, (lba >> 32) as u32, (blocks - 1) as u32, 0, 0, 0],
            ..Command::default()
        };
        let pair =
            self.io.get_mut(queue).ok_or_else(|| NvmeError::BadRequest(format!("no I/O queue {queue}")))?;
        let Some(cid) = pair.submit(&mut self.regs, command, &prp) else { return Ok(None) };
        self.commands += 1;
        Ok(Some(Pending { queue, cid }))
    }

    /// Collects the completions I/O queue `queue` has posted, as `(cid, status)`.
    pub fn poll(&mut self, queue: usize, done: &mut Vec<(u16, Status)>) {
        self.done.clear();
        if let Some(pair) = self.io.get_mut(queue) {
            pair.drain(&mut self.regs, &mut self.done);
        }
        done.extend(self.done.iter().map(|c| (c.cid, c.status)));
    }

    /// Commands outstanding on I/O queue `queue`.
    pub fn outstanding(&self, queue: usize) -> u16 {
        self.io.get(queue).map_or(0, QueuePair::outstanding)
    }

    /// Moves `blocks` blocks at `lba` to or from `bus` (mapped, contiguous in bus space): one
    /// command per [`Controller::max_transfer`] bytes, spread over the I/O queues in turn,
    /// all outstanding at once, then waits for every completion.
    pub fn transfer(&mut self, op: IoOp, lba: u64, blocks: u64, bus: BusAddr) -> Result<(), NvmeError> {
        if self.io.is_empty() {
            return Err(NvmeError::BadRequest("no I/O queue".into()));
        }
        let per_command = (self.max_transfer / u64::from(self.namespace.block_bytes)).max(1);
        let mut pending: Vec<(Pending, u64, u64)> = Vec::new();
        let mut done = Vec::new();
        let mut first_error = None;
        let mut at = 0;
        let start = self.env.now_us();
        let mut spin = Spin::default();
        while at < blocks || !pending.is_empty() {
            if at < blocks && first_error.is_none() {
                let count = per_command.min(blocks - at);
                let queue = self.next_queue % self.io.len();
                let address = BusAddr(bus.get() + at * u64::from(self.namespace.block_bytes));
                if let Some(p) = self.submit(queue, op, lba + at, count, address)? {
                    pending.push((p, lba + at, count));
                    self.next_queue += 1;
                    at += count;
                    continue;
                }
            } else if first_error.is_some() {
                at = blocks;
            }
            let mut progressed = false;
            for queue in 0..self.io.len() {
                done.clear();
                self.poll(queue, &mut done);
                progressed |= !done.is_empty();
                for &(cid, status) in &done {
                    if let Some(i) = pending.iter().position(|(p, _, _)| p.queue == queue && p.cid == cid) {
                        let (_, piece_lba, piece_blocks) = pending.swap_remove(i);
                        if !status.is_success() && first_error.is_none() {
                            first_error = Some(NvmeError::Command {
                                command: Self::describe(op, piece_lba, piece_blocks),
                                status,
                            });
                        }
                    }
                }
            }
            if progressed || !spin.due() {
                continue;
            }
            if let Some(&(p, piece_lba, piece_blocks)) = pending.first() {
                self.check_fatal(&Self::describe(op, piece_lba, piece_blocks))?;
                if self.env.now_us().saturating_sub(start) > self.config.command_timeout_us {
                    return Err(NvmeError::Timeout {
                        command: Self::describe(op, piece_lba, piece_blocks),
                        queue: p.queue as u16 + 1,
                        waited_ms: self.config.command_timeout_us / 1000,
                    });
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Flushes the namespace's volatile write cache (NVM Command Set 1.0 §3.2.1).
    pub fn flush(&mut self) -> Result<(), NvmeError> {
        let command = Command { opcode: io::FLUSH, nsid: self.namespace.id, ..Command::default() };
        let none = PrpPlan { prp1: 0, prp2: super::prp::Prp2::Unused };
        let pair = self.io.first_mut().ok_or_else(|| NvmeError::BadRequest("no I/O queue".into()))?;
        let cid = pair
            .submit(&mut self.regs, command, &none)
            .ok_or_else(|| NvmeError::BadRequest("Flush: the I/O queue is full".into()))?;
        let start = self.env.now_us();
        let mut done = Vec::new();
        let mut spin = Spin::default();
        loop {
            done.clear();
            self.poll(0, &mut done);
            if let Some(&(_, status)) = done.iter().find(|(c, _)| *c == cid) {
                return match status.is_success() {
                    true => Ok(()),
                    false => Err(NvmeError::Command { command: "Flush".into(), status }),
                };
            }
            if !spin.due() {
                continue;
            }
            self.check_fatal("Flush")?;
            if self.env.now_us().saturating_sub(start) > self.config.command_timeout_us {
                let waited_ms = self.config.command_timeout_us / 1000;
                return Err(NvmeError::Timeout { command: "Flush".into(), queue: 1, waited_ms });
            }
        }
    }
}
