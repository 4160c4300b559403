//! The IOVA allocator: masks, IOVA 0, reservations, alignment, frees.

use super::*;
use crate::addr::Liobn;

const MSI_WINDOW: u64 = 0x400_0000_0000;

fn window(bus_base: u64, page_shift: u32, window_shift: u32) -> DmaWindow {
    DmaWindow::new(Liobn(0x8000_0000), BusAddr(bus_base), page_shift, window_shift).unwrap()
}

const ALL: DmaMask = DmaMask(u64::MAX);

#[test]
fn never_hands_out_iova_zero() {
    let mut at_zero = IovaAllocator::new(&window(0, 12, 30));
    assert_eq!(at_zero.free_pages(), (1 << 18) - 1);
    assert_eq!(at_zero.alloc(1, 1, ALL), Ok(BusAddr(0x1000)));
    // Page 0 cannot be freed either: it was never allocated.
    assert_eq!(at_zero.free(BusAddr(0), 1), Err(IovaError::NotAllocated { iova: BusAddr(0) }));
    // A window elsewhere starts at its base.
    let mut high = IovaAllocator::new(&window(1 << 59, 24, 33));
    assert_eq!(high.alloc(1, 1, ALL), Ok(BusAddr(1 << 59)));
}

#[test]
fn the_mask_bounds_the_last_byte() {
    // 16M pages over [0, 16 GiB); a 32-bit device.
    let mut allocator = IovaAllocator::new(&window(0, 24, 34));
    let mask = DmaMask::from_bits(32);
    // Pages 1..=255 are below 4 GiB.
    assert_eq!(allocator.alloc(255, 1, mask), Ok(BusAddr(1 << 24)));
    assert_eq!(allocator.alloc(1, 1, mask), Err(IovaError::NoSpace { pages: 1, mask }));
    assert_eq!(allocator.alloc(1, 1, ALL), Ok(BusAddr(1 << 32)));
    // A mask that ends mid-page excludes that page.
    let mut other = IovaAllocator::new(&window(0, 24, 34));
    let odd = DmaMask((3 << 24) + 0x10);
    assert_eq!(other.alloc(2, 1, odd), Ok(BusAddr(1 << 24)));
    assert!(other.alloc(1, 1, odd).is_err());
    // A window entirely above the mask.
    let mut above = IovaAllocator::new(&window(1 << 59, 24, 33));
    assert!(matches!(above.alloc(1, 1, DmaMask::from_bits(48)), Err(IovaError::NoSpace { .. })));
}

#[test]
fn reservations_are_never_handed_out() {
    // An 8 TiB window at bus 0 with 16M pages covers the MSI doorbell and MMIO32.
    let mut allocator = IovaAllocator::new(&window(0, 24, 43));
    let pages = 1u64 << 19;
    assert_eq!(allocator.reserve(BusAddr(MSI_WINDOW), 0x1000), Ok(1));
    assert_eq!(allocator.reserve(BusAddr(0x8000_0000), 0x8000_0000), Ok(128));
    assert_eq!(allocator.reserve(BusAddr(0x8000_0000), 0x1000), Ok(0)); // already reserved
    assert_eq!(allocator.reserve(BusAddr(1 << 50), 0x1000), Ok(0)); // outside the window
    let msi_page = MSI_WINDOW >> 24;
    assert_eq!(allocator.alloc(127, 1, ALL), Ok(BusAddr(1 << 24)));
    // Too big for the hole below MMIO32: it goes above, up to the MSI page.
    assert_eq!(allocator.alloc(msi_page - 256, 1, ALL), Ok(BusAddr(0x1_0000_0000)));
    assert_eq!(allocator.alloc(pages - msi_page - 1, 1, ALL), Ok(BusAddr(MSI_WINDOW + (1 << 24))));
    assert!(allocator.alloc(1, 1, ALL).is_err());
    assert_eq!(allocator.in_use(), pages - 1 - 1 - 128);
    assert_eq!(allocator.free_pages(), 0);
    // A reservation over a live allocation is refused.
    let refused = allocator.reserve(BusAddr(1 << 25), 1);
    assert_eq!(refused, Err(IovaError::ReservedInUse { start: BusAddr(1 << 25), len: 1 }));
}

#[test]
fn alignment_is_of_the_bus_address() {
    let mut allocator = IovaAllocator::new(&window(0, 12, 30));
    assert_eq!(allocator.alloc(3, 4, ALL), Ok(BusAddr(0x4000)));
    assert_eq!(allocator.alloc(1, 1, ALL), Ok(BusAddr(0x1000)));
    assert_eq!(allocator.alloc(16, 16, ALL), Ok(BusAddr(0x10000)));
    assert_eq!(allocator.alloc(1, 1, ALL), Ok(BusAddr(0x2000)));
    assert_eq!(allocator.alloc(1, 3, ALL), Err(IovaError::BadAlignment { align_pages: 3 }));
    assert_eq!(allocator.alloc(1, 0, ALL), Err(IovaError::BadAlignment { align_pages: 0 }));
    assert_eq!(allocator.alloc(0, 1, ALL), Err(IovaError::ZeroPages));
    assert_eq!(allocator.in_use(), 21);
}

#[test]
fn frees_are_checked_and_coalesce() {
    let mut allocator = IovaAllocator::new(&window(0, 12, 20)); // 256 pages, 255 usable
    let a = allocator.alloc(10, 1, ALL).unwrap();
    let b = allocator.alloc(20, 1, ALL).unwrap();
    let c = allocator.alloc(225, 1, ALL).unwrap();
    assert!(allocator.alloc(1, 1, ALL).is_err());
    assert_eq!(allocator.free(b, 10), Err(IovaError::SizeMismatch { iova: b, pages: 10, allocated: 20 }));
    assert_eq!(
        allocator.free(BusAddr(b.get() + 0x1000), 19),
        Err(IovaError::NotAllocated { iova: BusAddr(b.get() + 0x1000) })
    );
    assert!(allocator.free(BusAddr(b.get() + 1), 20).is_err());
    assert!(allocator.free(BusAddr(1 << 40), 1).is_err());
    allocator.free(b, 20).unwrap();
    assert_eq!(allocator.free(b, 20), Err(IovaError::NotAllocated { iova: b })); // double free
    assert_eq!(allocator.in_use(), 235);
    allocator.free(a, 10).unwrap();
    allocator.free(c, 225).unwrap();
    assert_eq!(allocator.in_use(), 0);
    // Everything merged back: the whole usable range is one extent again.
    assert_eq!(allocator.alloc(255, 1, ALL), Ok(BusAddr(0x1000)));
    assert_eq!(
        IovaError::SizeMismatch { iova: b, pages: 10, allocated: 20 }.to_string(),
        "freeing 10 pages at IOVA 0xb000, but 20 pages were allocated there"
    );
}
