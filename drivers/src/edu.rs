//! A polled driver for QEMU's `edu` PCI device: identification, liveness check and DMA.
//!
//! The device is reached through [`EduRegs`] (the kernel maps BAR0 and does volatile MMIO; host
//! tests use a model) and waits are bounded through [`Clock`]. Facts relied on, from QEMU 7.2's
//! `docs/specs/edu.txt` and `hw/misc/edu.c`:
//! - PCI ID 1234:11e8; BAR0 is 1 MiB of MMIO. Offsets below 0x80 take 4-byte accesses only, the
//!   DMA registers (0x80..) 4- or 8-byte ones. The MMIO ops are `DEVICE_NATIVE_ENDIAN`, which for
//!   `qemu-system-ppc64` means big-endian whatever the guest's byte order.
//! - 0x00 identification `0xRRrr00ed` (major `RR`, minor `rr`; QEMU 7.2 answers 0x010000ed);
//!   0x04 liveness: reads back the complement of the last value written.
//! - 0x80 source, 0x88 destination, 0x90 count, 0x98 command (bit 0 start, bit 1 direction:
//!   0 RAM → device buffer, 1 device buffer → RAM, bit 2 interrupt when done). A command write
//!   without bit 0 is ignored; with it, a ~100 ms virtual-time timer runs the copy and clears
//!   bit 0. While bit 0 is set, writes to all four DMA registers are ignored.
//! - The device-side buffer is 4 KiB at device address 0x40000 and is never masked. Its range
//!   check calls `hw_error` (QEMU aborts) when the transfer leaves the buffer; before QEMU 8.2.1
//!   it also rejects a transfer whose end equals the buffer's end (fixed by commit 2c5107e1b455,
//!   "edu: fix DMA range upper bound check"). Checked with this machine's Debian QEMU 7.2.22
//!   (`qemu-system-x86_64`, same `edu.c`, registers driven over `-qtest`): offset 0 + 0xfff
//!   bytes and 0xffe + 1 complete; 0 + 0x1000, 0x800 + 0x800 and 0xfff + 1 abort QEMU with
//!   "hardware error: EDU: DMA range … out of bounds". So only the first
//!   [`EDU_USABLE_BUFFER_LEN`] bytes are used here.
//! - The RAM-side address is ANDed with the `dma_mask` property (default 2^28 − 1) before the
//!   PCI DMA, so an address above the mask silently lands elsewhere: [`EDU_DMA_MASK_BITS`].
//!
//! Every request is validated before the first register access, so a bad request can neither
//! abort QEMU nor reach the wrong memory.

use core::fmt;

use crate::addr::BusAddr;
use crate::iommu::DmaMask;

/// PCI vendor ID of the device (QEMU's).
pub const EDU_VENDOR_ID: u16 = 0x1234;
/// PCI device ID of the device.
pub const EDU_DEVICE_ID: u16 = 0x11e8;
/// Size of BAR0, the register block.
pub const EDU_BAR0_SIZE: u64 = 1 << 20;
/// How many low bits of a RAM-side bus address the device keeps (its default `dma_mask`).
pub const EDU_DMA_MASK_BITS: u32 = 28;
/// The device's DMA mask, for the IOVA allocator.
pub const EDU_DMA_MASK: DmaMask = DmaMask::from_bits(EDU_DMA_MASK_BITS);
/// Device address of the device-side DMA buffer.
pub const EDU_BUFFER_DEVICE_ADDR: u64 = 0x40000;
/// Size of the device-side DMA buffer.
pub const EDU_BUFFER_LEN: u32 = 0x1000;
/// The part of the buffer a transfer may touch: QEMU before 8.2.1 aborts on the last byte.
pub const EDU_USABLE_BUFFER_LEN: u32 = EDU_BUFFER_LEN - 1;
/// A generous bound for one transfer (QEMU completes it after ~100 ms of virtual time).
pub const DEFAULT_DMA_TIMEOUT_US: u64 = 5_000_000;

const REG_IDENTIFICATION: usize = 0x00;
const REG_LIVENESS: usize = 0x04;
const REG_DMA_SOURCE: usize = 0x80;
const REG_DMA_DESTINATION: usize = 0x88;
const REG_DMA_COUNT: usize = 0x90;
const REG_DMA_COMMAND: usize = 0x98;

const IDENTIFICATION_MAGIC: u32 = 0x00ed;
const COMMAND_START: u64 = 1 << 0;
const COMMAND_TO_RAM: u64 = 1 << 1;
/// Two patterns, complements of each other, so a register stuck at one value cannot pass.
const LIVENESS_PATTERNS: [u32; 2] = [0x5a0f_c396, !0x5a0f_c396];

/// Access to the device's BAR0 registers; `offset` is relative to the BAR.
///
/// Values are in CPU order: on pseries the device is big-endian (`DEVICE_NATIVE_ENDIAN` in
/// `qemu-system-ppc64`), so a little-endian kernel byte-swaps. Offsets below 0x80 are only used
/// with the 32-bit methods, the DMA registers only with the 64-bit ones. Accesses are ordered
/// against RAM as Linux's `out_be64`/`in_be64` are: a write comes after all earlier stores to
/// RAM (`sync` first), so the device sees a filled buffer when told to start, and a read
/// completes before later loads from RAM, so a finished transfer's data is not read stale.
pub trait EduRegs {
    /// Reads the 32-bit register at `offset`.
    fn read32(&mut self, offset: usize) -> u32;
    /// Writes the 32-bit register at `offset`.
    fn write32(&mut self, offset: usize, value: u32);
    /// Reads the 64-bit register at `offset`.
    fn read64(&mut self, offset: usize) -> u64;
    /// Writes the 64-bit register at `offset`.
    fn write64(&mut self, offset: usize, value: u64);
}

impl<T: EduRegs + ?Sized> EduRegs for &mut T {
    fn read32(&mut self, offset: usize) -> u32 {
        (**self).read32(offset)
    }
    fn write32(&mut self, offset: usize, value: u32) {
        (**self).write32(offset, value);
    }
    fn read64(&mut self, offset: usize) -> u64 {
        (**self).read64(offset)
    }
    fn write64(&mut self, offset: usize, value: u64) {
        (**self).write64(offset, value);
    }
}

/// A monotonic time source for bounding waits (the kernel uses the timebase).
pub trait Clock {
    /// Microseconds since an arbitrary fixed point.
    fn now_us(&mut self) -> u64;
}

/// The device's version, from the identification register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EduVersion {
    /// Bits 31..24.
    pub major: u8,
    /// Bits 23..16.
    pub minor: u8,
}

impl fmt::Display for EduVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Which way a transfer copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EduDirection {
    /// From RAM into the device buffer (command bit 1 clear).
    ToDevice,
    /// From the device buffer into RAM (command bit 1 set).
    FromDevice,
}

/// One requested transfer, as named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EduTransfer {
    /// Which way it copies.
    pub direction: EduDirection,
    /// Bus address of the RAM side (an IOVA in the device's DMA window).
    pub ram: BusAddr,
    /// Offset of the device side inside the device buffer.
    pub device_offset: u32,
    /// Bytes to copy.
    pub len: u32,
}

impl fmt::Display for EduTransfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ram, offset, len) = (self.ram, self.device_offset, self.len);
        let buffer = EDU_BUFFER_DEVICE_ADDR;
        match self.direction {
            EduDirection::ToDevice => write!(
                f,
                "edu DMA from bus address {ram} to device buffer {buffer:#x}+{offset:#x} ({len:#x} bytes)"
            ),
            EduDirection::FromDevice => write!(
                f,
                "edu DMA from device buffer {buffer:#x}+{offset:#x} to bus address {ram} ({len:#x} bytes)"
            ),
        }
    }
}

/// Why probing or a transfer failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EduError {
    /// The identification register does not read `0xRRrr00ed`.
    BadIdentification {
        /// What it read.
        value: u32,
    },
    /// The liveness register did not read back the complement of what was written.
    LivenessCheckFailed {
        /// The value written.
        wrote: u32,
        /// The value read back.
        read: u32,
    },
    /// The transfer has no bytes (rejected before touching the device).
    EmptyTransfer(EduTransfer),
    /// The device side leaves the usable buffer (rejected before touching the device).
    OutsideBuffer(EduTransfer),
    /// The RAM side's last byte is above the device's DMA mask (rejected before touching the
    /// device).
    BeyondDmaMask(EduTransfer),
    /// A previous transfer is still running; nothing was written.
    Busy {
        /// The transfer that was not started.
        transfer: EduTransfer,
        /// The command register as read.
        command: u64,
    },
    /// Start bit still set when the time ran out. The device may still complete the copy, so
    /// the RAM side must stay mapped until [`Edu::dma_busy`] is false.
    Timeout {
        /// The transfer that was started.
        transfer: EduTransfer,
        /// The bound that was exceeded.
        timeout_us: u64,
        /// The command register at the last poll.
        command: u64,
    },
}

impl fmt::Display for EduError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EduError::BadIdentification { value } => {
                write!(f, "edu identification register reads {value:#010x}, not 0xRRrr00ed")?;
                if value & 0xff00_0000 == 0xed00_0000 {
                    write!(f, " (it looks byte-swapped: the device registers are big-endian)")?;
                }
                Ok(())
            }
            EduError::LivenessCheckFailed { wrote, read } => write!(
                f,
                "edu liveness check failed: wrote {wrote:#010x}, read back {read:#010x} instead of {:#010x}",
                !wrote
            ),
            EduError::EmptyTransfer(transfer) => {
                write!(f, "{transfer} rejected: a transfer needs at least one byte")
            }
            EduError::OutsideBuffer(transfer) => write!(
                f,
                "{transfer} rejected: it leaves the usable device buffer {EDU_BUFFER_DEVICE_ADDR:#x}+[0, \
                 {EDU_USABLE_BUFFER_LEN:#x}) (QEMU 7.2 aborts on a transfer that reaches offset \
                 {EDU_USABLE_BUFFER_LEN:#x} or beyond)"
            ),
            EduError::BeyondDmaMask(transfer) => write!(
                f,
                "{transfer} rejected: its RAM side goes past {:#x}, the highest address of the device's \
                 {EDU_DMA_MASK_BITS}-bit DMA mask (the device would redirect it to {:#x})",
                EDU_DMA_MASK.highest(),
                transfer.ram.get() & EDU_DMA_MASK.highest()
            ),
            EduError::Busy { transfer, command } => write!(
                f,
                "{transfer} not started: a previous transfer is still running (command register \
                 {command:#x}) and the device ignores DMA register writes until it ends"
            ),
            EduError::Timeout { transfer, timeout_us, command } => write!(
                f,
                "{transfer} did not complete within {timeout_us} µs (command register {command:#x})"
            ),
        }
    }
}

/// A probed `edu` device.
pub struct Edu<R: EduRegs> {
    regs: R,
    version: EduVersion,
}

impl<R: EduRegs> Edu<R> {
    /// Checks the identification and liveness registers; on success the device is usable.
    ///
    /// The liveness register is only written once the identification looked right. Fails with
    /// [`EduError::BadIdentification`] or [`EduError::LivenessCheckFailed`].
    pub fn probe(mut regs: R) -> Result<Edu<R>, EduError> {
        let value = regs.read32(REG_IDENTIFICATION);
        if value & 0xffff != IDENTIFICATION_MAGIC {
            return Err(EduError::BadIdentification { value });
        }
        for wrote in LIVENESS_PATTERNS {
            regs.write32(REG_LIVENESS, wrote);
            let read = regs.read32(REG_LIVENESS);
            if read != !wrote {
                return Err(EduError::LivenessCheckFailed { wrote, read });
            }
        }
        let [major, minor, ..] = value.to_be_bytes();
        let version = EduVersion { major, minor };
        Ok(Edu { regs, version })
    }

    /// The version read while probing.
    pub fn version(&self) -> EduVersion {
        self.version
    }

    /// True while a transfer is running (command bit 0 set).
    pub fn dma_busy(&mut self) -> bool {
        self.regs.read64(REG_DMA_COMMAND) & COMMAND_START != 0
    }

    /// Runs one transfer (RAM at bus address `ram` ↔ the device buffer at `device_offset`)
    /// and waits up to `timeout_us` for the device to finish.
    ///
    /// Invalid requests fail before any register access (`EmptyTransfer`, `OutsideBuffer`,
    /// `BeyondDmaMask`); a running transfer gives `Busy` before any write; then `Timeout`.
    pub fn transfer<C: Clock>(
        &mut self,
        clock: &mut C,
        transfer: EduTransfer,
        timeout_us: u64,
    ) -> Result<(), EduError> {
        validate(&transfer)?;
        let command = self.regs.read64(REG_DMA_COMMAND);
        if command & COMMAND_START != 0 {
            return Err(EduError::Busy { transfer, command });
        }
        let device = EDU_BUFFER_DEVICE_ADDR + u64::from(transfer.device_offset);
        let (source, destination, command) = match transfer.direction {
            EduDirection::ToDevice => (transfer.ram.get(), device, COMMAND_START),
            EduDirection::FromDevice => (device, transfer.ram.get(), COMMAND_START | COMMAND_TO_RAM),
        };
        self.regs.write64(REG_DMA_SOURCE, source);
        self.regs.write64(REG_DMA_DESTINATION, destination);
        self.regs.write64(REG_DMA_COUNT, u64::from(transfer.len));
        self.regs.write64(REG_DMA_COMMAND, command);
        self.wait_idle(clock, transfer, timeout_us)
    }

    /// Polls the start bit until it clears or `timeout_us` has passed since the first poll.
    fn wait_idle<C: Clock>(
        &mut self,
        clock: &mut C,
        transfer: EduTransfer,
        timeout_us: u64,
    ) -> Result<(), EduError> {
        let start = clock.now_us();
        loop {
            let command = self.regs.read64(REG_DMA_COMMAND);
            if command & COMMAND_START == 0 {
                return Ok(());
            }
            if clock.now_us().saturating_sub(start) > timeout_us {
                return Err(EduError::Timeout { transfer, timeout_us, command });
            }
            core::hint::spin_loop();
        }
    }
}

/// Rejects what the device would abort on or send to the wrong address.
fn validate(transfer: &EduTransfer) -> Result<(), EduError> {
    if transfer.len == 0 {
        return Err(EduError::EmptyTransfer(*transfer));
    }
    let device_end = transfer.device_offset.checked_add(transfer.len);
    if !matches!(device_end, Some(end) if end <= EDU_USABLE_BUFFER_LEN) {
        return Err(EduError::OutsideBuffer(*transfer));
    }
    let ram_last = transfer.ram.get().checked_add(u64::from(transfer.len) - 1);
    if !matches!(ram_last, Some(last) if last <= EDU_DMA_MASK.highest()) {
        return Err(EduError::BeyondDmaMask(*transfer));
    }
    Ok(())
}

#[cfg(test)]
#[path = "edu_tests.rs"]
mod tests;
