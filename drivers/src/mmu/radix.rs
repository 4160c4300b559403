//! A radix page-table tree (Power ISA 3.0 Book III §5.7.6) for an identity map.
//!
//! Geometry (Linux `radix.h` for a 4 KiB base page): 52-bit effective addresses split
//! 13/9/9/9 bits over four levels plus a 12-bit offset. A level-1 (PUD) entry maps 1 GiB, a
//! level-2 (PMD) entry 2 MiB; this builder uses only those two leaf sizes. Entries are
//! big-endian doublewords in memory ([`TableMemory::write`] stores them so):
//! - directory entry: V (bit 0, `1 << 63`) | next-level base (bits 4:55, 256-byte aligned) |
//!   NLS (bits 59:63) = log2 of the next level's entry count;
//! - leaf: V | L (bit 1, `1 << 62`) | real page number (bits 7:51) | R (`0x100`) | C (`0x80`)
//!   | attribute (bits 58:59: `0x00` normal memory, `0x20` non-idempotent I/O = cache
//!   inhibited and guarded) | EAA (bits 60:63: privileged `0x8`, read `0x4`, write `0x2`,
//!   execute `0x1`). R and C are set up front so no reference/change interrupt can occur.
//! - process-table entry doubleword 0: RTS1 (bits 1:2) | root base | RTS2 (bits 56:58) |
//!   RPDS (bits 59:63); RTS = 52 − 31 = 21 = 0b10_101, RPDS = 13.
//!
//! Quadrant: with PIDR = 0 both quadrant 0 (EA 0x0…) and quadrant 3 (EA 0xc…, used for
//! interrupts with AIL = 3) translate through process-table entry 0, and the quadrant bits are
//! not part of the tree index, so one identity tree serves both.

use core::fmt;

/// Bits of effective address the tree translates.
pub const ADDRESS_BITS: u32 = 52;
/// Entries per level, as log2: root, PUD, PMD, PTE.
pub const LEVEL_BITS: [u32; 4] = [13, 9, 9, 9];
/// 1 GiB.
pub const GIB: u64 = 1 << 30;
/// 2 MiB.
pub const MIB2: u64 = 1 << 21;

const VALID: u64 = 1 << 63;
const LEAF: u64 = 1 << 62;
const NEXT_BASE: u64 = 0x0fff_ffff_ffff_ff00;
const RPN: u64 = 0x01ff_ffff_ffff_f000;
const REFERENCED: u64 = 0x100;
const CHANGED: u64 = 0x80;
const NON_IDEMPOTENT: u64 = 0x20;
const ATTRIBUTE: u64 = 0x30;
const PRIVILEGED: u64 = 0x8;
const READ: u64 = 0x4;
const WRITE: u64 = 0x2;
const EXECUTE: u64 = 0x1;
/// RTS = 21 split as RTS1 = 0b10 (bits 61:62) and RTS2 = 0b101 (bits 5:7).
const RTS_52: u64 = (0b10 << 61) | (0b101 << 5);

/// What a mapping is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attr {
    /// RAM: cacheable, read, write, execute, privileged.
    Memory,
    /// MMIO: cache-inhibited and guarded (non-idempotent I/O), read, write, no execute,
    /// privileged.
    Io,
}

impl Attr {
    const fn bits(self) -> u64 {
        match self {
            Attr::Memory => PRIVILEGED | READ | WRITE | EXECUTE,
            Attr::Io => NON_IDEMPOTENT | PRIVILEGED | READ | WRITE,
        }
    }

    fn of_leaf(entry: u64) -> Attr {
        if entry & ATTRIBUTE == NON_IDEMPOTENT {
            Attr::Io
        } else {
            Attr::Memory
        }
    }
}

/// Memory for page tables: zeroed, aligned allocations and doubleword access, at physical
/// (= effective, the tree is an identity map) addresses.
pub trait TableMemory {
    /// A zeroed table of `entries` doublewords aligned to its size; its physical address.
    fn alloc_table(&mut self, entries: usize) -> Option<u64>;
    /// Stores `value` (architectural, stored big-endian) at entry `index` of the table at `table`.
    fn write(&mut self, table: u64, index: usize, value: u64);
    /// Loads entry `index` of the table at `table`.
    fn read(&self, table: u64, index: usize) -> u64;
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmuError {
    /// The table memory ran out.
    OutOfMemory,
    /// The range reaches past the 52-bit address space.
    BeyondAddressSpace {
        /// Start of the range.
        base: u64,
        /// Its size.
        size: u64,
    },
    /// Part of the range is already mapped with other attributes.
    Conflict {
        /// The first address in conflict.
        at: u64,
    },
}

impl fmt::Display for MmuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MmuError::OutOfMemory => write!(f, "no memory left for page tables"),
            MmuError::BeyondAddressSpace { base, size } => {
                write!(f, "range {base:#x}+{size:#x} reaches past the 52-bit address space")
            }
            MmuError::Conflict { at } => write!(f, "{at:#x} is already mapped with other attributes"),
        }
    }
}

/// Leaves written, by size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeafCount {
    /// 1 GiB leaves.
    pub huge: u64,
    /// 2 MiB leaves.
    pub large: u64,
}

/// An identity-mapping radix tree being built in `M`.
#[derive(Debug)]
pub struct Radix<M: TableMemory> {
    mem: M,
    root: u64,
    leaves: LeafCount,
}

/// What a walk found for an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The real address.
    pub real: u64,
    /// How it is mapped.
    pub attr: Attr,
    /// The leaf's size.
    pub page_size: u64,
}

impl<M: TableMemory> Radix<M> {
    /// An empty tree (just the root table).
    pub fn new(mut mem: M) -> Result<Self, MmuError> {
        let root = mem.alloc_table(1 << LEVEL_BITS[0]).ok_or(MmuError::OutOfMemory)?;
        Ok(Self { mem, root, leaves: LeafCount::default() })
    }

    /// The root table's address.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Leaves written so far.
    pub fn leaves(&self) -> LeafCount {
        self.leaves
    }

    /// Doubleword 0 of the process-table entry for this tree.
    pub fn process_table_entry(&self) -> u64 {
        RTS_52 | (self.root & NEXT_BASE) | u64::from(LEVEL_BITS[0])
    }

    /// The table memory (for the caller to keep alive).
    pub fn into_memory(self) -> M {
        self.mem
    }

    /// The table memory, borrowed.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// Maps `[base, base + size)` to itself, widened to 2 MiB boundaries, with 1 GiB leaves
    /// where a whole aligned GiB is covered and 2 MiB leaves elsewhere. Mapping a part again
    /// with the same attributes is allowed; with others it is a [`MmuError::Conflict`].
    pub fn map(&mut self, base: u64, size: u64, attr: Attr) -> Result<(), MmuError> {
        let beyond = MmuError::BeyondAddressSpace { base, size };
        let end = base.checked_add(size).ok_or(beyond)?;
        if size == 0 {
            return Ok(());
        }
        let mut at = base & !(MIB2 - 1);
        let end = end.checked_next_multiple_of(MIB2).ok_or(beyond)?;
        if end > 1 << ADDRESS_BITS {
            return Err(beyond);
        }
        while at < end {
            if at.is_multiple_of(GIB) && end - at >= GIB {
                self.leaf(at, 1, attr)?;
                at += GIB;
            } else {
                self.leaf(at, 2, attr)?;
                at += MIB2;
            }
        }
        Ok(())
    }

    /// The index of `ea` at `level` (0 = root).
    fn index(ea: u64, level: usize) -> usize {
        let below: u32 = LEVEL_BITS[level + 1..].iter().sum::<u32>() + 12;
        ((ea >> below) & ((1 << LEVEL_BITS[level]) - 1)) as usize
    }

    /// Writes a leaf for `ea` at `level` (1 = 1 GiB, 2 = 2 MiB).
    fn leaf(&mut self, ea: u64, level: usize, attr: Attr) -> Result<(), MmuError> {
        let mut table = self.root;
        for depth in 0..level {
            let index = Self::index(ea, depth);
            let entry = self.mem.read(table, index);
            if entry & VALID == 0 {
                let entries = 1usize << LEVEL_BITS[depth + 1];
                let next = self.mem.alloc_table(entries).ok_or(MmuError::OutOfMemory)?;
                self.mem.write(table, index, VALID | (next & NEXT_BASE) | u64::from(LEVEL_BITS[depth + 1]));
                table = next;
            } else if entry & LEAF != 0 {
                // A larger leaf already covers this address.
                return match Attr::of_leaf(entry) == attr {
                    true => Ok(()),
                    false => Err(MmuError::Conflict { at: ea }),
                };
            } else {
                table = entry & NEXT_BASE;
            }
        }
        let index = Self::index(ea, level);
        let entry = self.mem.read(table, index);
        if entry & VALID != 0 {
            let same = entry & LEAF != 0 && Attr::of_leaf(entry) == attr;
            return if same { Ok(()) } else { Err(MmuError::Conflict { at: ea }) };
        }
        let leaf = VALID | LEAF | (ea & RPN) | REFERENCED | CHANGED | attr.bits();
        self.mem.write(table, index, leaf);
        match level {
            1 => self.leaves.huge += 1,
            _ => self.leaves.large += 1,
        }
        Ok(())
    }

    /// Walks the tree for `ea` as the MMU would (quadrant bits ignored).
    pub fn translate(&self, ea: u64) -> Option<Translation> {
        let ea = ea & ((1 << ADDRESS_BITS) - 1);
        let mut table = self.root;
        for level in 0..LEVEL_BITS.len() {
            let entry = self.mem.read(table, Self::index(ea, level));
            if entry & VALID == 0 {
                return None;
            }
            if entry & LEAF != 0 {
                let below: u32 = LEVEL_BITS[level + 1..].iter().sum::<u32>() + 12;
                let page_size = 1u64 << below;
                let real = (entry & RPN & !(page_size - 1)) | (ea & (page_size - 1));
                return Some(Translation { real, attr: Attr::of_leaf(entry), page_size });
            }
            table = entry & NEXT_BASE;
        }
        None
    }
}

#[cfg(test)]
#[path = "tests_radix.rs"]
mod tests;
