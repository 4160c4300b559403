//! BAR assignment for functions on the root bus, and decode/bus-master enabling.
//!
//! On QEMU pseries, SLOF assigns BARs itself (`aik/SLOF : board-qemu/slof/pci-phb.fs`), but
//! with VOF (`x-vof=on`) or an FDT-direct boot nobody does, and QEMU ≥ 4.2 says so with
//! `linux,pci-probe-only = 0` (QEMU hw/ppc/spapr_pci.c `spapr_dt_phb`). Rules implemented here:
//! - a BAR whose address is 0 is unassigned (memory and I/O alike), so 0 is never handed out;
//! - assigned BARs are kept ([`BarOrigin::Firmware`]) and their ranges reserved;
//! - unassigned BARs are placed largest first at the lowest naturally aligned free address
//!   (PCI Local Bus 3.0 §6.2.5.1: a BAR decodes a power-of-two, size-aligned range): Mem64 into
//!   the 64-bit window, falling back to the 32-bit one, Mem32 into the 32-bit window (which must
//!   end at or below 4 GiB), I/O into the I/O window;
//! - only root-bus functions are assigned: buses behind bridges would need bridge windows;
//! - type 0 root-bus functions with BARs then get Memory/I/O decode for each kind whose BARs are
//!   all assigned (decode of a kind with an unassigned BAR is switched off) and Bus Master.
//!
//! A BAR that does not fit is recorded in `Function::problems` and left unassigned.

use alloc::{format, vec::Vec};

use super::bar::{program_bar, BarKind};
use super::bdf::Bdf;
use super::config::{ConfigAccess, ConfigError};
use super::error::PciError;
use super::function::Function;
use super::header::{Command, COMMAND, HEADER_TYPE_NORMAL};

/// Highest exclusive end of a 32-bit bus address range.
const FOUR_GIB: u64 = 1 << 32;

/// One PHB window in PCI bus addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// First bus address.
    pub bus_base: u64,
    /// Size in bytes.
    pub size: u64,
}

/// The PHB's windows (from the `ranges` property: space codes 1, 2 and 3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Windows {
    /// I/O space window.
    pub io: Option<Window>,
    /// 32-bit memory window.
    pub mem32: Option<Window>,
    /// 64-bit memory window.
    pub mem64: Option<Window>,
}

/// Who chose a BAR's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BarOrigin {
    /// It was already programmed when enumeration ran.
    Firmware,
    /// [`assign_bars`] placed it.
    Kernel,
}

/// One assigned BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Assignment {
    /// Function owning the BAR.
    pub bdf: Bdf,
    /// BAR register index.
    pub bar_index: u8,
    /// Bus address.
    pub bus_addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// Who chose the address.
    pub origin: BarOrigin,
}

/// A half-open bus address range in use.
#[derive(Clone, Copy)]
struct Range {
    start: u64,
    end: u64,
}

/// Ranges in use in the I/O and memory bus address spaces.
#[derive(Default)]
struct Reserved {
    io: Vec<Range>,
    memory: Vec<Range>,
}

impl Reserved {
    fn space(&mut self, kind: BarKind) -> &mut Vec<Range> {
        match kind {
            BarKind::Io => &mut self.io,
            BarKind::Mem32 | BarKind::Mem64 => &mut self.memory,
        }
    }
}

/// Assigns every unassigned BAR of the root-bus functions, keeps firmware assignments, and
/// enables decode and bus mastering (see the module documentation for the rules).
///
/// Returns all assigned BARs (firmware and kernel). Fails only for an invalid window.
pub fn assign_bars(
    cfg: &mut impl ConfigAccess,
    functions: &mut [Function],
    windows: &Windows,
) -> Result<Vec<Assignment>, PciError> {
    validate_window(windows.io, BarKind::Io, FOUR_GIB)?;
    validate_window(windows.mem32, BarKind::Mem32, FOUR_GIB)?;
    validate_window(windows.mem64, BarKind::Mem64, u64::MAX)?;
    let behind_bridge: Vec<bool> =
        functions.iter().map(|function| is_behind_bridge(functions, function.bdf.bus)).collect();
    let mut reserved = Reserved::default();
    let mut assignments = reserve_firmware_bars(functions, &mut reserved);
    for (function, behind) in functions.iter_mut().zip(&behind_bridge) {
        if *behind && function.bars.iter().any(|bar| !bar.is_assigned()) {
            function.problems.push("behind a bridge: BARs not assigned".into());
        }
    }
    let mut requests: Vec<(usize, usize)> = Vec::new();
    for (function_index, function) in functions.iter().enumerate() {
        if !behind_bridge[function_index] {
            for (bar_position, bar) in function.bars.iter().enumerate() {
                if !bar.is_assigned() {
                    requests.push((function_index, bar_position));
                }
            }
        }
    }
    requests.sort_by_key(|&(f, b)| core::cmp::Reverse(functions[f].bars[b].size));
    for (function_index, bar_position) in requests {
        let function = &mut functions[function_index];
        if let Some(assignment) = place_bar(cfg, function, bar_position, windows, &mut reserved) {
            assignments.push(assignment);
        }
    }
    for (function, behind) in functions.iter_mut().zip(&behind_bridge) {
        if !*behind && function.header_type == HEADER_TYPE_NORMAL && !function.bars.is_empty() {
            enable_decode(cfg, function);
        }
    }
    Ok(assignments)
}

/// True if some bridge in `functions` has `bus` as its secondary bus.
fn is_behind_bridge(functions: &[Function], bus: u8) -> bool {
    functions.iter().any(|function| function.is_bridge() && function.secondary_bus == Some(bus))
}

/// Rejects empty, wrapping or too-high windows.
fn validate_window(window: Option<Window>, kind: BarKind, limit: u64) -> Result<(), PciError> {
    let Some(window) = window else {
        return Ok(());
    };
    match window.bus_base.checked_add(window.size) {
        Some(end) if window.size != 0 && end <= limit => Ok(()),
        _ => Err(PciError::BadWindow { kind }),
    }
}

/// Lists and reserves BARs that already have an address.
fn reserve_firmware_bars(functions: &[Function], reserved: &mut Reserved) -> Vec<Assignment> {
    let mut assignments = Vec::new();
    for function in functions {
        for bar in function.bars.iter().filter(|bar| bar.is_assigned()) {
            let end = bar.bus_addr.saturating_add(bar.size);
            reserved.space(bar.kind).push(Range { start: bar.bus_addr, end });
            assignments.push(Assignment {
                bdf: function.bdf,
                bar_index: bar.index,
                bus_addr: bar.bus_addr,
                size: bar.size,
                origin: BarOrigin::Firmware,
            });
        }
    }
    assignments
}

/// Finds room for `function.bars[bar_position]`, programs it and reserves it; records a
/// problem and returns `None` if it does not fit or cannot be written.
fn place_bar(
    cfg: &mut impl ConfigAccess,
    function: &mut Function,
    bar_position: usize,
    windows: &Windows,
    reserved: &mut Reserved,
) -> Option<Assignment> {
    let bar = function.bars[bar_position].clone();
    let candidates = match bar.kind {
        BarKind::Io => [windows.io, None],
        BarKind::Mem32 => [windows.mem32, None],
        BarKind::Mem64 => [windows.mem64, windows.mem32],
    };
    let space = reserved.space(bar.kind);
    let Some(bus_addr) = candidates.iter().flatten().find_map(|window| find_free(space, window, bar.size))
    else {
        let problem = format!("BAR{}: {:#x} bytes of {:?} do not fit", bar.index, bar.size, bar.kind);
        function.problems.push(problem);
        return None;
    };
    space.push(Range { start: bus_addr, end: bus_addr + bar.size });
    if let Err(error) = program_bar(cfg, function.bdf, &bar, bus_addr) {
        let problem = format!("BAR{}: writing {bus_addr:#x} failed ({error})", bar.index);
        function.problems.push(problem);
        return None;
    }
    function.bars[bar_position].bus_addr = bus_addr;
    Some(Assignment {
        bdf: function.bdf,
        bar_index: bar.index,
        bus_addr,
        size: bar.size,
        origin: BarOrigin::Kernel,
    })
}

/// Lowest non-zero, `size`-aligned address in `window` not overlapping `reserved`.
fn find_free(reserved: &[Range], window: &Window, size: u64) -> Option<u64> {
    if !size.is_power_of_two() {
        return None;
    }
    let window_end = window.bus_base.checked_add(window.size)?;
    let mut candidate = align_up(window.bus_base.max(1), size)?;
    // Each reserved range can push the candidate past itself at most once.
    for _ in 0..=reserved.len() {
        let end = candidate.checked_add(size)?;
        if end > window_end {
            return None;
        }
        match reserved.iter().find(|r| r.start < end && candidate < r.end) {
            None => return Some(candidate),
            Some(range) => candidate = align_up(range.end, size)?,
        }
    }
    None
}

/// Rounds `value` up to a multiple of `align` (a power of two), `None` on overflow.
fn align_up(value: u64, align: u64) -> Option<u64> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}

/// Sets Bus Master plus Memory/I/O decode for the kinds whose BARs are all assigned.
fn enable_decode(cfg: &mut impl ConfigAccess, function: &mut Function) {
    let mut wanted = Command::BUS_MASTER;
    for (kind_is_memory, decode) in [(true, Command::MEMORY_SPACE), (false, Command::IO_SPACE)] {
        let mut of_kind =
            function.bars.iter().filter(|bar| bar.kind.is_memory() == kind_is_memory).peekable();
        if of_kind.peek().is_some() && of_kind.all(|bar| bar.is_assigned()) {
            wanted |= decode;
        }
    }
    let current = match cfg.read_u16(function.bdf, COMMAND) {
        Ok(value) => Command::from_bits_retain(value),
        Err(error) => {
            function.problems.push(format!("command unreadable ({error}): decode not enabled"));
            return;
        }
    };
    let command = (current - (Command::MEMORY_SPACE | Command::IO_SPACE)) | wanted;
    match cfg.write_u16(function.bdf, COMMAND, command.bits()) {
        Ok(()) => function.command = command.bits(),
        Err(error) => function.problems.push(format!("command write failed ({error})")),
    }
}

/// Stops a function's DMA: clears Bus Master in its Command register (a device without a DMA
/// window must not reach memory at all), leaving decode as it was.
pub fn stop_dma(cfg: &mut impl ConfigAccess, function: &mut Function) -> Result<(), ConfigError> {
    let current = Command::from_bits_retain(cfg.read_u16(function.bdf, COMMAND)?);
    let command = current - Command::BUS_MASTER;
    cfg.write_u16(function.bdf, COMMAND, command.bits())?;
    function.command = command.bits();
    Ok(())
}
