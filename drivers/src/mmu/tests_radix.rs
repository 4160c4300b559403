//! The radix builder against a fake table memory, checked with its own walker and with the
//! raw entry bits.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use super::*;

/// Tables at increasing aligned fake addresses; values kept as written.
#[derive(Debug, Default)]
struct Fake {
    tables: BTreeMap<u64, Vec<u64>>,
    next: u64,
    limit: Option<usize>,
}

impl TableMemory for Fake {
    fn alloc_table(&mut self, entries: usize) -> Option<u64> {
        if self.limit.is_some_and(|l| self.tables.len() >= l) {
            return None;
        }
        let bytes = entries as u64 * 8;
        let at = (self.next.max(0x10_0000)).next_multiple_of(bytes);
        self.next = at + bytes;
        self.tables.insert(at, vec![0; entries]);
        Some(at)
    }
    fn write(&mut self, table: u64, index: usize, value: u64) {
        self.tables.get_mut(&table).expect("a table")[index] = value;
    }
    fn read(&self, table: u64, index: usize) -> u64 {
        self.tables[&table][index]
    }
}

fn tree() -> Radix<Fake> {
    Radix::new(Fake::default()).unwrap()
}

#[test]
fn ram_gets_1g_leaves_and_an_unaligned_tail_2m_leaves() {
    let mut t = tree();
    t.map(0, 2 * GIB + 3 * MIB2 + 5, Attr::Memory).unwrap();
    assert_eq!(t.leaves(), LeafCount { huge: 2, large: 4 });
    let seen = t.translate(0x7654_3210).unwrap();
    assert_eq!(seen, Translation { real: 0x7654_3210, attr: Attr::Memory, page_size: GIB });
    let tail = t.translate(2 * GIB + 3 * MIB2 + 4).unwrap();
    assert_eq!((tail.real, tail.page_size), (2 * GIB + 3 * MIB2 + 4, MIB2));
    assert_eq!(t.translate(2 * GIB + 4 * MIB2), None, "nothing past the rounded end");
    // Quadrant 3 (AIL 3 interrupt vectors) translates like quadrant 0.
    assert_eq!(t.translate(0xc000_0000_0000_4300).unwrap().real, 0x4300);
}

#[test]
fn leaf_bits_are_the_isa_ones() {
    let mut t = tree();
    t.map(0, GIB, Attr::Memory).unwrap();
    t.map(0x200_8000_0000, 2 * MIB2, Attr::Io).unwrap();
    let root = t.root();
    let mem = t.into_memory();
    let pud = mem.read(root, 0);
    assert_eq!(pud & (VALID | LEAF | 0x1f), VALID | 9, "a directory entry with NLS 9");
    let ram_leaf = mem.read(pud & NEXT_BASE, 0);
    assert_eq!(ram_leaf, VALID | LEAF | REFERENCED | CHANGED | PRIVILEGED | READ | WRITE | EXECUTE);
    // 0x200_8000_0000: root index 4, PUD index 2, PMD index 0.
    let pud4 = mem.read(root, 4) & NEXT_BASE;
    let pmd = mem.read(pud4, 2) & NEXT_BASE;
    let io_leaf = mem.read(pmd, 0);
    assert_eq!(
        io_leaf,
        VALID | LEAF | 0x200_8000_0000 | REFERENCED | CHANGED | 0x20 | PRIVILEGED | READ | WRITE
    );
    assert_eq!(io_leaf & EXECUTE, 0, "MMIO is not executable");
}

#[test]
fn process_table_entry_encodes_a_52_bit_tree() {
    let t = tree();
    let entry = t.process_table_entry();
    // RTS = 21: RTS1 = 0b10 at bits 62:61, RTS2 = 0b101 at bits 7:5; RPDS = 13.
    assert_eq!(entry >> 61, 0b10);
    assert_eq!((entry >> 5) & 0b111, 0b101);
    assert_eq!(entry & 0x1f, 13);
    assert_eq!(entry & NEXT_BASE, t.root());
    assert_eq!(t.root() % (8 << 13), 0, "the root is aligned to its 64 KiB size");
}

#[test]
fn io_windows_and_conflicts() {
    let mut t = tree();
    t.map(0, 4 * GIB, Attr::Memory).unwrap();
    // QEMU PHB 0: 64 KiB I/O window, 2 GiB 32-bit window, 64-bit window.
    t.map(0x200_0000_0000, 0x1_0000, Attr::Io).unwrap();
    t.map(0x200_8000_0000, 0x8000_0000, Attr::Io).unwrap();
    t.map(0x210_0000_0000, 0x10_0000_0000, Attr::Io).unwrap();
    assert_eq!(t.translate(0x200_0000_1234).map(|x| (x.attr, x.page_size)), Some((Attr::Io, MIB2)));
    assert_eq!(t.translate(0x200_9000_0000).map(|x| x.attr), Some(Attr::Io));
    assert_eq!(t.translate(0x21f_ffff_ffff).map(|x| x.real), Some(0x21f_ffff_ffff));
    // Mapping RAM again is fine; mapping part of it as I/O is not.
    t.map(GIB, GIB, Attr::Memory).unwrap();
    assert_eq!(t.map(GIB + MIB2, MIB2, Attr::Io), Err(MmuError::Conflict { at: GIB + MIB2 }));
    assert_eq!(
        t.map(u64::MAX - 5, 10, Attr::Io),
        Err(MmuError::BeyondAddressSpace { base: u64::MAX - 5, size: 10 })
    );
    assert!(matches!(t.map(1 << 52, MIB2, Attr::Io), Err(MmuError::BeyondAddressSpace { .. })));
}

#[test]
fn running_out_of_table_memory_is_an_error() {
    let mut t = Radix::new(Fake { limit: Some(2), ..Fake::default() }).unwrap();
    t.map(0, GIB, Attr::Memory).unwrap();
    assert_eq!(t.map(0x200_0000_0000, MIB2, Attr::Io), Err(MmuError::OutOfMemory));
}
