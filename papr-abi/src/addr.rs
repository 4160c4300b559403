//! Address and handle types that must never be mixed up.
//!
//! A pseries guest deals with three kinds of numbers that all look like `u64`:
//! guest-physical addresses (what the CPU uses in real mode), PCI bus addresses (what a
//! device puts on the bus; on a DMA window they are IOVAs translated by TCEs) and LIOBNs
//! (logical I/O bus numbers naming a TCE table, LoPAR "ibm,dma-window"). Each gets its own
//! type so that the compiler catches a physical address handed to a device.

use core::fmt;

/// A guest-physical (real-mode) address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct PhysAddr(pub u64);

/// A PCI bus address as seen by a device (an IOVA when it falls in a DMA window).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct BusAddr(pub u64);

/// A logical I/O bus number: the hypervisor's name for one TCE table (one DMA window).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Liobn(pub u32);

macro_rules! impl_addr {
    ($ty:ident) => {
        impl $ty {
            /// The raw value.
            pub const fn get(self) -> u64 {
                self.0
            }

            /// `self + offset`, or `None` on overflow.
            pub const fn checked_add(self, offset: u64) -> Option<Self> {
                match self.0.checked_add(offset) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }

            /// Rounds down to a multiple of `align` (a power of two).
            pub const fn align_down(self, align: u64) -> Self {
                Self(self.0 & !(align - 1))
            }

            /// True if the address is a multiple of `align` (a power of two).
            pub const fn is_aligned(self, align: u64) -> bool {
                self.0 & (align - 1) == 0
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($ty), "({:#x})"), self.0)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

impl_addr!(PhysAddr);
impl_addr!(BusAddr);

impl fmt::Debug for Liobn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Liobn({:#x})", self.0)
    }
}

impl fmt::Display for Liobn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A half-open range of guest-physical memory `[base, base + size)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PhysRange {
    /// First byte.
    pub base: PhysAddr,
    /// Length in bytes.
    pub size: u64,
}

impl PhysRange {
    /// One past the last byte (saturating).
    pub const fn end(&self) -> u64 {
        self.base.0.saturating_add(self.size)
    }

    /// True if `[addr, addr + len)` lies inside this range.
    pub const fn contains(&self, addr: u64, len: u64) -> bool {
        match addr.checked_add(len) {
            Some(end) => addr >= self.base.0 && end <= self.end(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_helpers() {
        assert_eq!(PhysAddr(0x1234).align_down(0x1000), PhysAddr(0x1000));
        assert!(BusAddr(0x2000).is_aligned(0x1000));
        assert!(!BusAddr(0x2001).is_aligned(0x1000));
        assert_eq!(PhysAddr(u64::MAX).checked_add(1), None);
    }

    #[test]
    fn range_contains_rejects_overflow() {
        let r = PhysRange { base: PhysAddr(0x1000), size: 0x1000 };
        assert!(r.contains(0x1000, 0x1000));
        assert!(!r.contains(0x1800, 0x1000));
        assert!(!r.contains(u64::MAX, 2));
        assert_eq!(format!("{:?}", PhysAddr(16)), "PhysAddr(0x10)");
    }
}
