//! Decode and bus mastering once addresses are settled, and switching bus mastering off.
//!
//! A function answers memory (I/O) cycles only with Memory (I/O) Space set in its Command
//! register and masters DMA only with Bus Master set (PCI Local Bus 3.0 §6.2.2). A bridge
//! forwards its memory and prefetchable windows only with Memory Space set, its I/O window
//! only with I/O Space set, and DMA from behind it upstream only with Bus Master set
//! (PCI-to-PCI Bridge Architecture 1.2, the Command register of the type 1 header; QEMU
//! `hw/pci/pci_bridge.c : pci_bridge_region_init` maps the windows only with those bits).
//!
//! Rules: a space is decoded only when every BAR of the function in it is assigned (an
//! unassigned BAR would claim address 0); a bridge's space is decoded when it has an open
//! window or a BAR in it, under the same condition. Bus Master is always set.

use alloc::format;

use super::bridge::WindowKind;
use super::config::{ConfigAccess, ConfigError};
use super::function::Function;
use super::header::{Command, COMMAND, HEADER_TYPE_BRIDGE, HEADER_TYPE_NORMAL};

/// Enables decode and bus mastering on every type 0 function with BARs and every bridge.
pub fn enable_decode(cfg: &mut impl ConfigAccess, functions: &mut [Function]) {
    for function in functions.iter_mut() {
        match function.header_type {
            HEADER_TYPE_NORMAL if !function.bars.is_empty() => enable(cfg, function),
            HEADER_TYPE_BRIDGE => enable(cfg, function),
            _ => {}
        }
    }
}

/// Sets Bus Master plus Memory/I/O decode for the spaces the function needs and whose BARs
/// are all assigned.
fn enable(cfg: &mut impl ConfigAccess, function: &mut Function) {
    let mut wanted = Command::BUS_MASTER;
    for (memory, decode) in [(true, Command::MEMORY_SPACE), (false, Command::IO_SPACE)] {
        let windows: &[WindowKind] =
            if memory { &[WindowKind::Memory, WindowKind::Prefetchable] } else { &[WindowKind::Io] };
        let forwards = function.bridge.is_some_and(|b| windows.iter().any(|&kind| b.window(kind).is_some()));
        let mut of_kind = function.bars.iter().filter(|bar| bar.kind.is_memory() == memory).peekable();
        let has_bars = of_kind.peek().is_some();
        let unassigned = of_kind.find(|bar| !bar.is_assigned()).map(|bar| bar.index);
        match unassigned {
            None if has_bars || forwards => wanted |= decode,
            Some(index) if forwards => {
                let space = if memory { "memory" } else { "I/O" };
                function.problems.push(format!(
                    "its own BAR{index} is unassigned: {space} decode left off, so its {space} windows forward nothing"
                ));
            }
            _ => {}
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
