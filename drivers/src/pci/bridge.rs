//! PCI-to-PCI bridges: bus numbers and the three forwarding windows, read and programmed.
//!
//! Facts (PCI-to-PCI Bridge Architecture 1.2):
//! - §3.2.5.2–4: primary, secondary and subordinate bus numbers at 0x18–0x1a; 0x1b is the
//!   secondary latency timer, kept when the bus numbers are written;
//! - §3.2.5.6 and §3.2.5.11: the I/O window, 4 KiB granularity; bits 3–0 of the base and limit
//!   registers say 16-bit (0) or 32-bit (1) decode, the upper 16 address bits live at 0x30/0x32;
//! - §3.2.5.8: the memory window, 32-bit only, 1 MiB granularity;
//! - §3.2.5.9–10: the prefetchable window, 1 MiB granularity, 32-bit (0) or 64-bit (1) decode,
//!   the upper 32 address bits at 0x28/0x2c;
//! - a window forwards `[base, limit + granule − 1]` when base ≤ limit; a limit below the base
//!   closes it. The I/O and prefetchable windows are optional: a bridge without one has
//!   read-only zero registers. Whether one exists is probed the way Linux does it
//!   (`drivers/pci/setup-bus.c : pci_bridge_check_ranges`): a register pair reading 0 is
//!   written with a closed pattern, read back and restored.
//!
//! QEMU 7.2's bridges (`hw/pci/pci_bridge.c : pci_bridge_get_base`, `pci.c :
//! pci_init_wmask_bridge`) implement all three, I/O with 16-bit and prefetchable with 64-bit
//! decode, and forward a window only while the bridge's Command register enables that space.

use core::fmt;

use super::assign::Window;
use super::bdf::Bdf;
use super::config::{ConfigAccess, ConfigError, Width};
use super::header::{
    IO_BASE, IO_BASE_UPPER, IO_LIMIT_UPPER, MEMORY_BASE, PREFETCHABLE_BASE, PREFETCHABLE_BASE_UPPER,
    PREFETCHABLE_LIMIT_UPPER, PRIMARY_BUS,
};

/// 4 KiB: the I/O window's granularity.
pub const IO_GRANULE: u64 = 0x1000;
/// 1 MiB: the memory and prefetchable windows' granularity.
pub const MEMORY_GRANULE: u64 = 0x10_0000;

/// The I/O base/limit pair written by the probe: base 0xf000 above limit 0xe000, a closed window.
const IO_PROBE: u32 = 0xe0f0;
/// The prefetchable base/limit pair written by the probe: base above limit, a closed window.
const PREFETCHABLE_PROBE: u32 = 0xffe0_fff0;

/// One of a bridge's forwarding windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WindowKind {
    /// I/O space.
    Io,
    /// Non-prefetchable memory (32-bit addresses).
    Memory,
    /// Prefetchable memory (32- or 64-bit addresses).
    Prefetchable,
}

impl WindowKind {
    /// The three kinds, in report order.
    pub const ALL: [WindowKind; 3] = [WindowKind::Io, WindowKind::Memory, WindowKind::Prefetchable];

    /// Granularity and minimum alignment of the window.
    pub const fn granule(self) -> u64 {
        match self {
            WindowKind::Io => IO_GRANULE,
            WindowKind::Memory | WindowKind::Prefetchable => MEMORY_GRANULE,
        }
    }

    /// Short name for reports: `io`, `mem`, `pref`.
    pub const fn name(self) -> &'static str {
        match self {
            WindowKind::Io => "io",
            WindowKind::Memory => "mem",
            WindowKind::Prefetchable => "pref",
        }
    }
}

impl fmt::Display for WindowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            WindowKind::Io => "I/O",
            WindowKind::Memory => "memory",
            WindowKind::Prefetchable => "prefetchable",
        };
        f.write_str(text)
    }
}

/// How many address bits a window decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decode {
    /// 16 bits (I/O windows without the upper registers).
    Bits16,
    /// 32 bits.
    Bits32,
    /// 64 bits (prefetchable windows with the upper registers).
    Bits64,
}

impl fmt::Display for Decode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-bit", self.bits())
    }
}

impl Decode {
    /// Address bits decoded.
    pub const fn bits(self) -> u32 {
        match self {
            Decode::Bits16 => 16,
            Decode::Bits32 => 32,
            Decode::Bits64 => 64,
        }
    }

    /// The highest address the decoder can name.
    pub const fn max_address(self) -> u64 {
        u64::MAX >> (64 - self.bits())
    }
}

/// A bridge's bus numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BusNumbers {
    /// The bus the bridge sits on.
    pub primary: u8,
    /// The bus directly behind it.
    pub secondary: u8,
    /// The highest bus behind it.
    pub subordinate: u8,
}

/// What a bridge's type 1 header says: bus numbers, which windows it implements, and the
/// windows currently open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bridge {
    /// Its bus numbers.
    pub buses: BusNumbers,
    /// Decode width of its I/O window, `None` if it has none.
    pub io_decode: Option<Decode>,
    /// Decode width of its prefetchable window, `None` if it has none.
    pub prefetchable_decode: Option<Decode>,
    /// The open windows, in [`WindowKind::ALL`] order (`None`: closed or not implemented).
    pub windows: [Option<Window>; 3],
}

impl Bridge {
    /// Decode width of the window of `kind`, `None` if the bridge has no such window.
    pub fn decode(&self, kind: WindowKind) -> Option<Decode> {
        match kind {
            WindowKind::Io => self.io_decode,
            WindowKind::Memory => Some(Decode::Bits32),
            WindowKind::Prefetchable => self.prefetchable_decode,
        }
    }

    /// The open window of `kind`.
    pub fn window(&self, kind: WindowKind) -> Option<Window> {
        self.windows[kind as usize]
    }

    /// Records the window of `kind` as open (`Some`) or closed.
    pub fn set_window(&mut self, kind: WindowKind, window: Option<Window>) {
        self.windows[kind as usize] = window;
    }
}

/// Why a window could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WindowWriteError {
    /// The bridge has no window of this kind.
    NotImplemented,
    /// The range is not granule-aligned or beyond what the window decodes.
    Unencodable,
    /// A configuration access failed.
    Config(ConfigError),
}

impl From<ConfigError> for WindowWriteError {
    fn from(error: ConfigError) -> Self {
        WindowWriteError::Config(error)
    }
}

impl fmt::Display for WindowWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowWriteError::NotImplemented => f.write_str("the bridge has no such window"),
            WindowWriteError::Unencodable => {
                f.write_str("the range cannot be encoded in the window registers")
            }
            WindowWriteError::Config(error) => write!(f, "{error}"),
        }
    }
}

/// Reads a bridge's bus numbers, probes which optional windows it implements and decodes the
/// open windows.
pub fn read_bridge(cfg: &mut impl ConfigAccess, bdf: Bdf) -> Result<Bridge, ConfigError> {
    let buses = cfg.read_u32(bdf, PRIMARY_BUS)?;
    let [primary, secondary, subordinate, _latency] = buses.to_le_bytes();
    let io_pair = probe_pair(cfg, bdf, IO_BASE, Width::Word, IO_PROBE)?;
    let prefetchable_pair = probe_pair(cfg, bdf, PREFETCHABLE_BASE, Width::Dword, PREFETCHABLE_PROBE)?;
    let io_decode = io_pair.map(|pair| if pair & 0xf == 1 { Decode::Bits32 } else { Decode::Bits16 });
    let prefetchable_decode =
        prefetchable_pair.map(|pair| if pair & 0xf == 1 { Decode::Bits64 } else { Decode::Bits32 });
    let io = match (io_pair, io_decode) {
        (Some(pair), Some(decode)) => {
            let upper = match decode {
                Decode::Bits32 => (cfg.read_u16(bdf, IO_BASE_UPPER)?, cfg.read_u16(bdf, IO_LIMIT_UPPER)?),
                Decode::Bits16 | Decode::Bits64 => (0, 0),
            };
            let base = u64::from(pair & 0xf0) << 8 | u64::from(upper.0) << 16;
            let limit = u64::from(pair >> 8 & 0xf0) << 8 | u64::from(upper.1) << 16 | (IO_GRANULE - 1);
            open_window(base, limit)
        }
        _ => None,
    };
    let memory_pair = cfg.read_u32(bdf, MEMORY_BASE)?;
    let memory = open_window(
        u64::from(memory_pair & 0xfff0) << 16,
        u64::from(memory_pair >> 16 & 0xfff0) << 16 | (MEMORY_GRANULE - 1),
    );
    let prefetchable = match (prefetchable_pair, prefetchable_decode) {
        (Some(pair), Some(decode)) => {
            let upper = match decode {
                Decode::Bits64 => (
                    cfg.read_u32(bdf, PREFETCHABLE_BASE_UPPER)?,
                    cfg.read_u32(bdf, PREFETCHABLE_LIMIT_UPPER)?,
                ),
                Decode::Bits16 | Decode::Bits32 => (0, 0),
            };
            let base = u64::from(pair & 0xfff0) << 16 | u64::from(upper.0) << 32;
            let limit =
                u64::from(pair >> 16 & 0xfff0) << 16 | u64::from(upper.1) << 32 | (MEMORY_GRANULE - 1);
            open_window(base, limit)
        }
        _ => None,
    };
    Ok(Bridge {
        buses: BusNumbers { primary, secondary, subordinate },
        io_decode,
        prefetchable_decode,
        windows: [io, memory, prefetchable],
    })
}

/// The window `[base, limit]`, `None` when the limit is below the base (closed).
fn open_window(base: u64, limit: u64) -> Option<Window> {
    (base <= limit).then(|| Window { bus_base: base, size: (limit - base).saturating_add(1) })
}

/// The base/limit register pair at `offset` (`width` wide: base in the low half, limit in the
/// high half), `None` if the window is not implemented: the pair reads 0 and keeps reading 0
/// after the closed `pattern` is written (the pair is restored to 0 afterwards).
fn probe_pair(
    cfg: &mut impl ConfigAccess,
    bdf: Bdf,
    offset: u16,
    width: Width,
    pattern: u32,
) -> Result<Option<u32>, ConfigError> {
    let pair = cfg.read(bdf, offset, width)?;
    if pair != 0 {
        return Ok(Some(pair));
    }
    cfg.write(bdf, offset, width, pattern)?;
    let readback = cfg.read(bdf, offset, width);
    cfg.write(bdf, offset, width, 0)?;
    Ok((readback? != 0).then_some(0))
}

/// Writes the primary, secondary and subordinate bus numbers, keeping the secondary latency
/// timer.
pub fn write_bus_numbers(
    cfg: &mut impl ConfigAccess,
    bdf: Bdf,
    buses: BusNumbers,
) -> Result<(), ConfigError> {
    let latency = cfg.read_u32(bdf, PRIMARY_BUS)? & 0xff00_0000;
    let value = latency
        | u32::from(buses.subordinate) << 16
        | u32::from(buses.secondary) << 8
        | u32::from(buses.primary);
    cfg.write_u32(bdf, PRIMARY_BUS, value)
}

/// Opens the window of `kind` on `[window.bus_base, window.bus_base + window.size)`, or closes
/// it (`None`: base above limit). The range must be granule-aligned and within the decoder.
pub fn write_window(
    cfg: &mut impl ConfigAccess,
    bdf: Bdf,
    bridge: &Bridge,
    kind: WindowKind,
    window: Option<Window>,
) -> Result<(), WindowWriteError> {
    let decode = bridge.decode(kind).ok_or(WindowWriteError::NotImplemented)?;
    let granule = kind.granule();
    let (base, limit) = match window {
        None => (granule.wrapping_neg() & decode.max_address().min(0xffff_ffff), 0),
        Some(w) => {
            let last = w.size.checked_sub(1).and_then(|s| w.bus_base.checked_add(s));
            let aligned = w.bus_base % granule == 0 && w.size % granule == 0;
            match last {
                Some(last) if aligned && last <= decode.max_address() => (w.bus_base, last & !(granule - 1)),
                _ => return Err(WindowWriteError::Unencodable),
            }
        }
    };
    // The low nibble of each base and limit register is the read-only decode type; it is
    // written back as it reads, so the value written is the value the register then holds.
    let type_bits: u32 = match (kind, decode) {
        (WindowKind::Io, Decode::Bits32) | (WindowKind::Prefetchable, Decode::Bits64) => 1,
        _ => 0,
    };
    match kind {
        WindowKind::Io => {
            let pair = (base >> 8 & 0xf0) as u32 | type_bits | ((limit >> 8 & 0xf0) as u32 | type_bits) << 8;
            if decode == Decode::Bits32 {
                cfg.write_u16(bdf, IO_BASE_UPPER, (base >> 16) as u16)?;
                cfg.write_u16(bdf, IO_LIMIT_UPPER, (limit >> 16) as u16)?;
            }
            cfg.write_u16(bdf, IO_BASE, pair as u16)?;
        }
        WindowKind::Memory | WindowKind::Prefetchable => {
            let pair =
                (base >> 16 & 0xfff0) as u32 | type_bits | ((limit >> 16 & 0xfff0) as u32 | type_bits) << 16;
            if kind == WindowKind::Prefetchable && decode == Decode::Bits64 {
                cfg.write_u32(bdf, PREFETCHABLE_BASE_UPPER, (base >> 32) as u32)?;
                cfg.write_u32(bdf, PREFETCHABLE_LIMIT_UPPER, (limit >> 32) as u32)?;
            }
            let register = if kind == WindowKind::Memory { MEMORY_BASE } else { PREFETCHABLE_BASE };
            cfg.write_u32(bdf, register, pair)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::fake::FakeConfigSpace;

    fn bridge_at_root(io: Option<Decode>, prefetchable: Option<Decode>) -> (FakeConfigSpace, Bdf) {
        let at = Bdf::new(0, 1, 0).unwrap();
        let mut cfg = FakeConfigSpace::new();
        cfg.add_function(at, 0x1b36, 0x0001, 0x06_04_00)
            .make_bridge(0, 1)
            .set_bridge_windows(io, prefetchable);
        (cfg, at)
    }

    #[test]
    fn windows_round_trip_through_the_registers() {
        let (mut cfg, at) = bridge_at_root(Some(Decode::Bits32), Some(Decode::Bits64));
        let bridge = read_bridge(&mut cfg, at).unwrap();
        assert_eq!(
            (bridge.io_decode, bridge.prefetchable_decode),
            (Some(Decode::Bits32), Some(Decode::Bits64))
        );
        let io = Window { bus_base: 0x1_2000, size: 0x3000 };
        let memory = Window { bus_base: 0x8030_0000, size: 0x20_0000 };
        let prefetchable = Window { bus_base: 0x2100_0040_0000, size: 0x10_0000 };
        write_window(&mut cfg, at, &bridge, WindowKind::Io, Some(io)).unwrap();
        write_window(&mut cfg, at, &bridge, WindowKind::Memory, Some(memory)).unwrap();
        write_window(&mut cfg, at, &bridge, WindowKind::Prefetchable, Some(prefetchable)).unwrap();
        let read = read_bridge(&mut cfg, at).unwrap();
        assert_eq!(read.windows, [Some(io), Some(memory), Some(prefetchable)]);
        for kind in WindowKind::ALL {
            write_window(&mut cfg, at, &bridge, kind, None).unwrap();
        }
        let closed = read_bridge(&mut cfg, at).unwrap();
        assert_eq!(closed.windows, [None, None, None]);
    }

    #[test]
    fn reset_registers_read_as_open_windows_at_zero_and_the_probe_restores_them() {
        // QEMU's bridge after reset: every base and limit 0, which per the spec opens
        // [0, granule) in each window.
        let (mut cfg, at) = bridge_at_root(Some(Decode::Bits16), Some(Decode::Bits64));
        let bridge = read_bridge(&mut cfg, at).unwrap();
        assert_eq!(bridge.window(WindowKind::Io), Some(Window { bus_base: 0, size: IO_GRANULE }));
        assert_eq!(bridge.window(WindowKind::Memory), Some(Window { bus_base: 0, size: MEMORY_GRANULE }));
        assert_eq!(bridge.buses, BusNumbers { primary: 0, secondary: 1, subordinate: 1 });
        assert_eq!(cfg.function(at).peek(IO_BASE, crate::pci::config::Width::Word), 0, "probe undone");
    }

    #[test]
    fn missing_windows_are_detected_and_cannot_be_written() {
        let (mut cfg, at) = bridge_at_root(None, None);
        let bridge = read_bridge(&mut cfg, at).unwrap();
        assert_eq!((bridge.io_decode, bridge.prefetchable_decode, bridge.windows[0]), (None, None, None));
        let window = Window { bus_base: 0x1000, size: 0x1000 };
        assert_eq!(
            write_window(&mut cfg, at, &bridge, WindowKind::Io, Some(window)),
            Err(WindowWriteError::NotImplemented)
        );
    }

    #[test]
    fn unaligned_or_unreachable_windows_are_refused() {
        let (mut cfg, at) = bridge_at_root(Some(Decode::Bits16), Some(Decode::Bits32));
        let bridge = read_bridge(&mut cfg, at).unwrap();
        let refused = [
            (WindowKind::Memory, Window { bus_base: 0x8000_8000, size: MEMORY_GRANULE }),
            (WindowKind::Memory, Window { bus_base: 0xfff0_0000, size: 2 * MEMORY_GRANULE }),
            (WindowKind::Io, Window { bus_base: 0xf000, size: 0x2000 }),
            (WindowKind::Prefetchable, Window { bus_base: 1 << 32, size: MEMORY_GRANULE }),
            (WindowKind::Memory, Window { bus_base: 0x8000_0000, size: 0 }),
        ];
        for (kind, window) in refused {
            let result = write_window(&mut cfg, at, &bridge, kind, Some(window));
            assert_eq!(result, Err(WindowWriteError::Unencodable), "{kind} {window:x?}");
        }
    }

    #[test]
    fn bus_numbers_keep_the_latency_timer() {
        let (mut cfg, at) = bridge_at_root(None, None);
        cfg.function_mut(at).poke(PRIMARY_BUS + 3, 0x40, crate::pci::config::Width::Byte);
        let buses = BusNumbers { primary: 0, secondary: 5, subordinate: 9 };
        write_bus_numbers(&mut cfg, at, buses).unwrap();
        assert_eq!(cfg.function(at).peek(PRIMARY_BUS, crate::pci::config::Width::Dword), 0x4009_0500);
        assert_eq!(
            cfg.writes.last().map(|w| (w.1, w.3)),
            Some((PRIMARY_BUS, 0x4009_0500)),
            "written as read"
        );
    }
}
