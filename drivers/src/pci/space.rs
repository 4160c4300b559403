//! Bus address bookkeeping on the root bus: the ranges already in use in the I/O and memory
//! spaces, and the lowest free aligned address for a new one (never 0: an address of 0 means
//! "unassigned" to a BAR).

use alloc::vec::Vec;

use super::assign::Window;
use super::bar::BarKind;
use super::window_plan::align_up;

/// A half-open bus address range in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First address.
    pub start: u64,
    /// First address past it.
    pub end: u64,
}

impl Range {
    /// `window` as a half-open range (its end saturates at 2^64 − 1).
    pub fn of(window: Window) -> Self {
        Self { start: window.bus_base, end: window.bus_base.saturating_add(window.size) }
    }
}

/// Ranges in use in the I/O and memory bus address spaces.
#[derive(Debug, Default)]
pub struct Reserved {
    io: Vec<Range>,
    memory: Vec<Range>,
}

impl Reserved {
    /// The ranges of the space `kind` lives in (Mem32 and Mem64 share one).
    pub fn space(&mut self, kind: BarKind) -> &mut Vec<Range> {
        match kind {
            BarKind::Io => &mut self.io,
            BarKind::Mem32 | BarKind::Mem64 => &mut self.memory,
        }
    }

    /// Finds, in the first candidate window that has room, the lowest free `align`-aligned
    /// address for `size` bytes in the space of `kind`, and reserves it.
    pub fn take(
        &mut self,
        kind: BarKind,
        candidates: &[Option<Window>],
        size: u64,
        align: u64,
    ) -> Option<u64> {
        let ranges = self.space(kind);
        let address =
            candidates.iter().flatten().find_map(|window| find_free(ranges, window, size, align))?;
        ranges.push(Range { start: address, end: address + size });
        Some(address)
    }
}

/// Lowest non-zero, `align`-aligned address for `size` bytes in `window` not overlapping
/// `reserved`.
fn find_free(reserved: &[Range], window: &Window, size: u64, align: u64) -> Option<u64> {
    if !align.is_power_of_two() || size == 0 {
        return None;
    }
    let window_end = window.bus_base.checked_add(window.size)?;
    let mut candidate = align_up(window.bus_base.max(1), align)?;
    // Each reserved range can push the candidate past itself at most once.
    for _ in 0..=reserved.len() {
        let end = candidate.checked_add(size)?;
        if end > window_end {
            return None;
        }
        match reserved.iter().find(|r| r.start < end && candidate < r.end) {
            None => return Some(candidate),
            Some(range) => candidate = align_up(range.end, align)?,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_lowest_aligned_gap_and_never_zero() {
        let mut reserved = Reserved::default();
        let io = Window { bus_base: 0, size: 0x1_0000 };
        assert_eq!(reserved.take(BarKind::Io, &[Some(io)], 0x1000, 0x1000), Some(0x1000));
        assert_eq!(reserved.take(BarKind::Io, &[Some(io)], 0x100, 0x100), Some(0x100));
        let mem = Window { bus_base: 0x8000_0000, size: 0x40_0000 };
        reserved.space(BarKind::Mem32).push(Range { start: 0x8000_0000, end: 0x8000_1000 });
        // A 3 MiB window aligned to 1 MiB lands after the reserved page, at the next MiB.
        assert_eq!(reserved.take(BarKind::Mem64, &[Some(mem)], 0x30_0000, 0x10_0000), Some(0x8010_0000));
        assert_eq!(reserved.take(BarKind::Mem32, &[Some(mem)], 0x10_0000, 0x10_0000), None, "full");
        assert_eq!(reserved.take(BarKind::Mem32, &[None, Some(mem)], 0x1000, 0x1000), Some(0x8000_1000));
        assert_eq!(reserved.take(BarKind::Mem32, &[Some(mem)], 0x1000, 0x3000), None, "alignment not 2^n");
    }
}
