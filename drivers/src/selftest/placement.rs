//! Where the DMA self-test puts its buffers: spread over all of RAM, clear of everything in use.
//!
//! The buffers sit at the lowest free page, the first free address at or above 1 GiB and
//! 4 GiB (when RAM reaches that far) and at the very end of RAM, so a DMA path that only
//! works for low memory, or that drops address bits, shows up as wrong data.

use alloc::vec::Vec;

use crate::addr::{PhysAddr, PhysRange};

/// The I/O page granularity buffers are aligned to.
pub const BUFFER_ALIGN: u64 = 0x1000;

/// Which spot of RAM a buffer stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spot {
    /// The lowest free page.
    Lowest,
    /// The first free address at or above 1 GiB.
    Above1G,
    /// The first free address at or above 4 GiB.
    Above4G,
    /// Ending at the last byte of RAM (or as close below it as is free).
    Last,
}

impl Spot {
    /// The report's name.
    pub const fn name(self) -> &'static str {
        match self {
            Spot::Lowest => "lowest",
            Spot::Above1G => "above-1g",
            Spot::Above4G => "above-4g",
            Spot::Last => "last",
        }
    }
}

fn overlaps(a: u64, a_len: u64, b: &PhysRange) -> bool {
    a < b.end() && b.base.get() < a.saturating_add(a_len)
}

fn fits(start: u64, len: u64, ram: &[PhysRange], reserved: &[PhysRange], taken: &[u64]) -> bool {
    start.is_multiple_of(BUFFER_ALIGN)
        && ram.iter().any(|r| r.contains(start, len))
        && !reserved.iter().any(|r| overlaps(start, len, r))
        && !taken.iter().any(|&t| overlaps(start, len, &PhysRange { base: PhysAddr(t), size: len }))
}

fn align_up(value: u64) -> Option<u64> {
    value.checked_add(BUFFER_ALIGN - 1).map(|v| v & !(BUFFER_ALIGN - 1))
}

/// Picks up to four non-overlapping `len`-byte buffers inside `ram` and outside `reserved`,
/// one per [`Spot`] that RAM can hold; spots that coincide with an earlier buffer are dropped.
pub fn place_buffers(ram: &[PhysRange], reserved: &[PhysRange], len: u64) -> Vec<(Spot, PhysAddr)> {
    let mut placed: Vec<(Spot, PhysAddr)> = Vec::new();
    if len == 0 {
        return placed;
    }
    // Every buffer that is lowest above some floor starts at a floor, a RAM base or the
    // aligned end of a reserved range; the highest one ends at a RAM end or a reserved base.
    let low_candidates = |floor: u64| {
        let starts = ram.iter().map(|r| r.base.get()).chain(reserved.iter().map(|r| r.end()));
        let mut all: Vec<u64> = starts.chain([floor]).filter_map(align_up).filter(|&s| s >= floor).collect();
        all.sort_unstable();
        all
    };
    for (spot, floor) in [(Spot::Lowest, 0), (Spot::Above1G, 1 << 30), (Spot::Above4G, 1 << 32)] {
        let taken: Vec<u64> = placed.iter().map(|p| p.1.get()).collect();
        if let Some(start) = low_candidates(floor).into_iter().find(|&s| fits(s, len, ram, reserved, &taken))
        {
            // A higher floor that lands on an earlier buffer's spot adds nothing.
            if spot == Spot::Lowest || start >= floor {
                placed.push((spot, PhysAddr(start)));
            }
        }
    }
    let taken: Vec<u64> = placed.iter().map(|p| p.1.get()).collect();
    let ends = ram.iter().map(|r| r.end()).chain(reserved.iter().map(|r| r.base.get()));
    let mut highs: Vec<u64> =
        ends.filter_map(|end| end.checked_sub(len)).map(|s| s & !(BUFFER_ALIGN - 1)).collect();
    highs.sort_unstable_by(|a, b| b.cmp(a));
    if let Some(start) = highs.into_iter().find(|&s| fits(s, len, ram, reserved, &taken)) {
        placed.push((Spot::Last, PhysAddr(start)));
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn r(base: u64, size: u64) -> PhysRange {
        PhysRange { base: PhysAddr(base), size }
    }

    #[test]
    fn eight_gib_gets_four_spread_buffers() {
        let reserved = [r(0, 0x50_0000), r(0x50_0000, 32 * MIB)];
        let placed = place_buffers(&[r(0, 8 * GIB)], &reserved, MIB);
        let want = [
            (Spot::Lowest, PhysAddr(0x250_0000)),
            (Spot::Above1G, PhysAddr(GIB)),
            (Spot::Above4G, PhysAddr(4 * GIB)),
            (Spot::Last, PhysAddr(8 * GIB - MIB)),
        ];
        assert_eq!(placed, want);
    }

    #[test]
    fn small_ram_skips_high_spots_and_avoids_rtas_at_the_top() {
        // 512 MiB with RTAS in the last 64 KiB, as SLOF places it.
        let reserved = [r(0, 0x250_0000), r(0x1fff_0000, 0x1_0000)];
        let placed = place_buffers(&[r(0, 512 * MIB)], &reserved, MIB);
        assert_eq!(placed, [(Spot::Lowest, PhysAddr(0x250_0000)), (Spot::Last, PhysAddr(0x1fef_0000))]);
        for (_, at) in &placed {
            assert!(!reserved.iter().any(|res| overlaps(at.get(), MIB, res)));
        }
    }

    #[test]
    fn split_ram_and_unaligned_reservations() {
        // Two ranges with a hole; a reservation ending mid-page.
        let ram = [r(0, 2 * GIB), r(4 * GIB, GIB)];
        let reserved = [r(0, 0x123_4567)];
        let placed = place_buffers(&ram, &reserved, MIB);
        assert_eq!(placed[0], (Spot::Lowest, PhysAddr(0x123_5000)));
        assert_eq!(placed[1], (Spot::Above1G, PhysAddr(GIB)));
        assert_eq!(placed[2], (Spot::Above4G, PhysAddr(4 * GIB)));
        assert_eq!(placed[3], (Spot::Last, PhysAddr(5 * GIB - MIB)));
        // A range too small for the buffer is never used.
        let placed = place_buffers(&[r(0, MIB / 2)], &[], MIB);
        assert!(placed.is_empty());
        assert!(place_buffers(&[r(0, GIB)], &[], 0).is_empty());
    }

    #[test]
    fn ram_just_one_buffer_big_gives_one_buffer() {
        let placed = place_buffers(&[r(0x1000, MIB)], &[], MIB);
        assert_eq!(placed, [(Spot::Lowest, PhysAddr(0x1000))]);
        assert_eq!(Spot::Above4G.name(), "above-4g");
    }
}
