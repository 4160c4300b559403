//! The `ibm,client-architecture-support` (CAS) request buffer.
//!
//! Layout (QEMU `h_client_architecture_support`, `spapr_ovec.c`; LoPAR B.6.2.3): a list of
//! big-endian (PVR mask, PVR value) pairs ended by a pair whose value has bits outside its
//! mask, then the option-vector table: one byte "number of vectors − 1", then each vector as
//! "length − 1" followed by its bytes. Vectors are found by position, so OV1…OV4 must be
//! present before OV5. Option-vector bit `OV_BIT(byte, bit)`: byte 1 is the first byte after
//! the length, bit 0 its most significant bit.
//! - OV1 byte 3 bit 0 (0x80): the guest supports ISA 3.00 (QEMU requires OV1 to be present).
//! - OV5 byte 24: bit 0 (0x80) "both MMUs" is invalid from a guest (QEMU exits); bit 1 (0x40)
//!   radix (clear: hash).
//! - OV5 byte 26 bit 1 (0x40): guest translation shootdown enable (GTSE).
//! - OV5 byte 6 bit 7 (0x01): HPT resizing supported; without it a hash guest's CAS makes
//!   QEMU reallocate the hashed page table for the maximum memory size.
//! - OV5 byte 2 bit 2 (0x20): dynamic reconfiguration memory — QEMU then describes memory
//!   beyond the boot RAM (DIMMs, hot-plug room) in `/ibm,dynamic-reconfiguration-memory`;
//!   byte 22 bit 0 (0x80): its `ibm,dynamic-memory-v2` form (QEMU `OV5_DRCONF_MEMORY`,
//!   `OV5_DRMEM_V2`; Linux prom_init asks for both).
//! - OV5 byte 6 bit 5 (0x04): hot-plug events from the dedicated event source (QEMU
//!   `OV5_HP_EVT`; Linux asks for it too): memory adds then name their LMBs by DRC index, and
//!   memory unplug is allowed (QEMU `spapr_memory_hot_unplug_supported`).
//! - OV5 byte 23: interrupt controller; 0 asks for legacy XICS, which QEMU 7.2's default
//!   `ic-mode=dual` offers (the kernel polls and takes no external interrupts).
//!
//! The PVR list is one entry with mask 0 and value 0, which matches every CPU ("raw mode",
//! no compatibility PVR requested), then the terminator (0, 0xffffffff).

use alloc::vec::Vec;

/// Bytes of option vector 5 sent (up to byte 26).
const OV5_BYTES: usize = 26;

/// Which MMU the guest asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CasMmu {
    /// The radix MMU with guest translation shootdown (POWER9 and later).
    Radix,
    /// The hashed page table.
    Hash,
}

/// The MMU to ask for on a CPU with this PVR.
pub fn mmu_for_pvr(pvr: u32) -> CasMmu {
    if pvr_has_radix(pvr) {
        CasMmu::Radix
    } else {
        CasMmu::Hash
    }
}

/// The CAS buffer asking for `mmu` (radix only for CPUs that offer it — QEMU records the radix
/// choice whatever the CPU).
pub fn cas_buffer(mmu: CasMmu) -> Vec<u8> {
    let radix = mmu == CasMmu::Radix;
    let mut buf = Vec::new();
    for (mask, value) in [(0u32, 0u32), (0, 0xffff_ffff)] {
        buf.extend_from_slice(&mask.to_be_bytes());
        buf.extend_from_slice(&value.to_be_bytes());
    }
    buf.push(5 - 1); // OV1..OV5
    let isa300 = if radix { 0x80 } else { 0 };
    buf.extend_from_slice(&[3 - 1, 0, 0, isa300]); // OV1: bytes 1-3
    for _ in 2..=4 {
        buf.extend_from_slice(&[0, 0]); // OV2..OV4: length 1 (stored as 0), one zero byte
    }
    let mut ov5 = [0u8; OV5_BYTES];
    ov5[2 - 1] = 0x20;
    ov5[6 - 1] = 0x04;
    ov5[22 - 1] = 0x80;
    if radix {
        ov5[24 - 1] = 0x40;
        ov5[26 - 1] = 0x40;
    } else {
        // HPT resizing understood: QEMU then keeps the hashed page table it booted with, the
        // size `ibm,pft-size` already told the guest, instead of reallocating it for maxmem.
        ov5[6 - 1] |= 0x01;
    }
    buf.push((OV5_BYTES - 1) as u8);
    buf.extend_from_slice(&ov5);
    buf
}

/// Whether a CPU with this PVR implements the radix MMU (POWER9 = 0x004e, POWER10 = 0x0080
/// and later; POWER8 family 0x004b/0x004c/0x004d is hash only).
pub fn pvr_has_radix(pvr: u32) -> bool {
    let version = pvr >> 16;
    version >= 0x004e
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks the buffer the way QEMU does and returns option vector `n`'s bytes.
    fn vector(buf: &[u8], n: usize) -> &[u8] {
        let mut at = 0;
        loop {
            let mask = u32::from_be_bytes(buf[at..at + 4].try_into().unwrap());
            let value = u32::from_be_bytes(buf[at + 4..at + 8].try_into().unwrap());
            at += 8;
            if !mask & value != 0 {
                break;
            }
        }
        let count = buf[at] as usize + 1;
        assert!(n <= count);
        at += 1;
        for _ in 1..n {
            at += buf[at] as usize + 2;
        }
        let len = buf[at] as usize + 1;
        &buf[at + 1..at + 1 + len]
    }

    #[test]
    fn radix_request_sets_the_mmu_and_gtse_bits_in_ov5() {
        let buf = cas_buffer(CasMmu::Radix);
        // The first PVR entry matches any CPU: (pvr & 0) == (0 & 0).
        assert_eq!(&buf[..8], &[0; 8]);
        assert_eq!(vector(&buf, 1), &[0, 0, 0x80]);
        let ov5 = vector(&buf, 5);
        assert_eq!(ov5.len(), 26);
        assert_eq!((ov5[23], ov5[25]), (0x40, 0x40), "byte 24 bit 1, byte 26 bit 1");
        assert_eq!(ov5[23] & 0x80, 0, "never both MMUs");
        assert_eq!(ov5[22], 0, "legacy XICS");
        assert_eq!(vector(&buf, 2), &[0]);
        assert_eq!((ov5[1], ov5[21]), (0x20, 0x80), "dynamic reconfiguration memory, v2");
        assert_eq!(ov5[5], 0x04, "hot-plug events");
    }

    #[test]
    fn hash_request_asks_for_no_mmu_bits_and_keeps_the_hpt() {
        let buf = cas_buffer(CasMmu::Hash);
        let ov5 = vector(&buf, 5);
        assert_eq!((ov5[23], ov5[25], ov5[5]), (0, 0, 0x05), "HPT resizing and hot-plug events");
        assert_eq!(vector(&buf, 1), &[0, 0, 0]);
    }

    #[test]
    fn radix_cpus_by_pvr() {
        assert!(!pvr_has_radix(0x004d_0200)); // POWER8
        assert!(!pvr_has_radix(0x004b_0201)); // POWER8E
        assert!(pvr_has_radix(0x004e_1202)); // POWER9
        assert!(pvr_has_radix(0x0080_1200)); // POWER10
        assert_eq!((mmu_for_pvr(0x004d_0200), mmu_for_pvr(0x004e_1202)), (CasMmu::Hash, CasMmu::Radix));
    }
}
