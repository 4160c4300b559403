//! The hash MMU (Power ISA 2.07 Book III §5.7.7, POWER8) for an identity map with 16 MiB
//! pages in 1 TiB segments: the SLB entries (`slbmte`) and hashed page-table entries
//! (`H_ENTER`) a pseries guest needs.
//!
//! Facts (QEMU `spapr_hcall.c` `h_enter`, `mmu-hash64.c`; Linux `mmu-hash.h`):
//! - The hypervisor owns the hashed page table; its size is `ibm,pft-size` = <0, log2 bytes>
//!   on the CPU nodes. A PTE group (PTEG) is 8 entries of 16 bytes, so there are
//!   2^(shift − 7) groups; `H_ENTER(flags, group × 8, v, r)` without H_EXACT takes a free
//!   slot of the group.
//! - Hash for a 1 TiB segment: `vsid ^ (vsid << 25) ^ (offset in segment >> page shift)`,
//!   masked to 39 bits; the primary group is `hash & (groups − 1)`, the secondary
//!   `!hash & (groups − 1)` with the H bit (`0x2`) set in the entry.
//! - HPTE doubleword 0 (v): B = 0b01 for 1 TiB (`1 << 62`) | AVPN (`vpn >> 23`, the
//!   virtual page number's high bits, low bit cleared for 16 MiB pages, at bit 7) | bolted
//!   (`0x10`, software) | L (`0x4`, large page) | V (`0x1`).
//! - Doubleword 1 (r): real page number (16 MiB aligned; LP encoding 0 for a 16 MiB page in a
//!   16 MiB-base segment) | R (`0x100`) | C (`0x80`) | WIMG (`0x78`) | N (`0x4`, no
//!   execute) | PP (`0x3`; 0b10 = read/write for any key). QEMU accepts RAM only with WIMG =
//!   M (`0x10`) and I/O only with I (`0x20`) or I|M; I|G (`0x28`) is I plus guarded.
//! - SLB entry for `slbmte RS, RB`: RB = ESID (EA bits 0:23 for 1 TiB) | V (`0x0800_0000`) |
//!   index; RS = VSID << 24 | B = 1 TiB (`1 << 62`) | L (`0x100`, 16 MiB base page, LP 0).

use alloc::vec::Vec;

use super::radix::Attr;

/// 1 TiB segments.
pub const SEGMENT_SHIFT: u32 = 40;
/// 16 MiB pages.
pub const PAGE_SHIFT: u32 = 24;
/// 16 MiB.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

const V_1T: u64 = 1 << 62;
const V_BOLTED: u64 = 0x10;
const V_LARGE: u64 = 0x4;
const V_SECONDARY: u64 = 0x2;
const V_VALID: u64 = 0x1;
const R_REFERENCED: u64 = 0x100;
const R_CHANGED: u64 = 0x80;
const R_MEMORY: u64 = 0x10;
const R_INHIBITED_GUARDED: u64 = 0x28;
const R_NO_EXECUTE: u64 = 0x4;
const R_PP_RW: u64 = 0x2;
const SLB_VALID: u64 = 0x0800_0000;
const SLB_LARGE: u64 = 0x100;
const HASH_MASK: u64 = 0x7f_ffff_ffff;

/// The VSID used for segment `esid` (any non-zero value unique per segment would do; the
/// interrupt alias of segment 0 reuses segment 0's).
pub const fn vsid_for(esid: u64) -> u64 {
    esid + 1
}

/// One `H_ENTER` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hpte {
    /// The PTE group for the primary hash (`pte_index` = group × 8).
    pub group: u64,
    /// The group for the secondary hash (used when the primary group is full).
    pub secondary_group: u64,
    /// Doubleword 0 for the primary group (set [`Hpte::secondary`] for the other).
    pub v: u64,
    /// Doubleword 1.
    pub r: u64,
}

impl Hpte {
    /// Doubleword 0 for the secondary group.
    pub fn secondary(&self) -> u64 {
        self.v | V_SECONDARY
    }
}

/// The entry mapping the 16 MiB page at `ea` (= its real address) in a table of
/// 2^`htab_shift` bytes.
pub fn hpte(ea: u64, attr: Attr, htab_shift: u32) -> Hpte {
    let page = ea & !(PAGE_SIZE - 1);
    let esid = page >> SEGMENT_SHIFT;
    let vsid = vsid_for(esid);
    let offset = page & ((1 << SEGMENT_SHIFT) - 1);
    let hash = (vsid ^ (vsid << 25) ^ (offset >> PAGE_SHIFT)) & HASH_MASK;
    let groups_mask = (1u64 << (htab_shift - 7)) - 1;
    // Virtual page number in 4 KiB units, then the AVPN (bits down to 2^23), low bit cleared
    // for a 16 MiB page.
    let vpn = (vsid << (SEGMENT_SHIFT - 12)) | (offset >> 12);
    let avpn = (vpn >> 11) & !1;
    let v = V_1T | (avpn << 7) | V_BOLTED | V_LARGE | V_VALID;
    let wimg = match attr {
        Attr::Memory => R_MEMORY,
        Attr::Io => R_INHIBITED_GUARDED | R_NO_EXECUTE,
    };
    let r = page | R_REFERENCED | R_CHANGED | wimg | R_PP_RW;
    Hpte { group: hash & groups_mask, secondary_group: !hash & groups_mask, v, r }
}

/// `slbmte` operands (RS, RB) for the 1 TiB segment holding `ea`, translated with the VSID
/// of segment `vsid_of_esid` (itself for an ordinary segment, 0 for the interrupt alias), in
/// SLB slot `index`.
pub fn slb_entry(ea: u64, vsid_of_esid: u64, index: u64) -> (u64, u64) {
    let rb = (ea & !((1u64 << SEGMENT_SHIFT) - 1)) | SLB_VALID | (index & 0xfff);
    let rs = (vsid_for(vsid_of_esid) << 24) | V_1T | SLB_LARGE;
    (rs, rb)
}

/// The 16 MiB pages covering `[base, base + size)`.
pub fn pages(base: u64, size: u64) -> impl Iterator<Item = u64> {
    let first = base & !(PAGE_SIZE - 1);
    let end = match size {
        0 => first,
        _ => base.saturating_add(size).saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1),
    };
    (first..end).step_by(PAGE_SIZE as usize)
}

/// The 1 TiB segments (ESIDs) `ranges` touch, sorted and without repeats.
pub fn segments(ranges: &[(u64, u64)]) -> Vec<u64> {
    let mut esids: Vec<u64> = ranges
        .iter()
        .filter(|r| r.1 > 0)
        .flat_map(|&(base, size)| (base >> SEGMENT_SHIFT)..=((base + size - 1) >> SEGMENT_SHIFT))
        .collect();
    esids.sort_unstable();
    esids.dedup();
    esids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpte_fields_for_ram_and_io() {
        // 2 GiB HPT (shift 24): 2^17 groups.
        let ram = hpte(0x1234_5678, Attr::Memory, 24);
        assert_eq!(ram.r, 0x1200_0000 | 0x100 | 0x80 | 0x10 | 0x2);
        assert_eq!(ram.v & 0x1f, 0x10 | 0x4 | 0x1);
        assert_eq!(ram.v >> 62, 0b01, "1 TiB segment");
        // VSID 1 (segment 0), page 0x12: vpn = 1 << 28 | 0x12000, avpn = vpn >> 11 & !1.
        let vpn: u64 = (1 << 28) | (0x1200_0000 >> 12);
        assert_eq!((ram.v >> 7) & ((1 << 55) - 1), (vpn >> 11) & !1);
        // hash = 1 ^ (1 << 25) ^ 0x12.
        assert_eq!(ram.group, (1 ^ (1 << 25) ^ 0x12) & ((1 << 17) - 1));
        assert_eq!(ram.secondary_group, !(1u64 ^ (1 << 25) ^ 0x12) & ((1 << 17) - 1));
        assert_eq!(ram.secondary() & 0x2, 0x2);
        let io = hpte(0x200_8000_0000, Attr::Io, 24);
        assert_eq!(io.r & 0x7f, 0x28 | 0x4 | 0x2, "I|G, no execute, RW");
        assert_eq!(io.r & !0xfff, 0x200_8000_0000);
    }

    #[test]
    fn slb_entries() {
        let (rs, rb) = slb_entry(0, 0, 0);
        assert_eq!(rb, 0x0800_0000);
        assert_eq!(rs, (1 << 24) | (1 << 62) | 0x100);
        // The interrupt alias: EA 0xc000… with segment 0's VSID in slot 2.
        let (rs, rb) = slb_entry(0xc000_0000_0000_4000, 0, 2);
        assert_eq!(rb, 0xc000_0000_0000_0000 | 0x0800_0000 | 2);
        assert_eq!(rs >> 24, vsid_for(0) | (1 << 38));
    }

    #[test]
    fn pages_and_segments() {
        assert_eq!(pages(0, 2 * PAGE_SIZE).collect::<Vec<_>>(), [0, PAGE_SIZE]);
        assert_eq!(pages(PAGE_SIZE - 1, 2).collect::<Vec<_>>(), [0, PAGE_SIZE]);
        assert_eq!(pages(5, 0).count(), 0);
        let esids =
            segments(&[(0, 1 << 31), (0x200_0000_0000, 0x1_0000), (0x210_0000_0000, 0x100_0000_0000)]);
        assert_eq!(esids, [0, 2, 3]);
    }
}
