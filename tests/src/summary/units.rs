//! Numbers as a person reads them: sizes in binary units, short bus addresses, page shifts,
//! the page-size mask of `ibm,query-pe-dma-window`, timebase ticks in milliseconds.

/// `bytes` in the largest binary unit that divides it exactly (`2 GiB`, `4 KiB`, `3 bytes`);
/// sizes that no unit divides get one decimal (`1.5 GiB`).
pub fn size(bytes: u64) -> String {
    const UNITS: [(&str, u32); 6] =
        [("EiB", 60), ("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (unit, shift) in UNITS {
        let one = 1u64 << shift;
        if bytes >= one && bytes.is_multiple_of(one) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    for (unit, shift) in UNITS {
        let one = 1u64 << shift;
        if bytes >= one {
            return format!("{:.1} {unit}", bytes as f64 / one as f64);
        }
    }
    if bytes == 1 {
        "1 byte".to_string()
    } else {
        format!("{bytes} bytes")
    }
}

/// A bus address in at most a few characters for the map's scale: `0`, `2G`, `33T`, `2^59`
/// (a power of two from 2^50 up), `2^59+2G`; anything else in hex.
pub fn short_address(address: u64) -> String {
    if address == 0 {
        return "0".to_string();
    }
    if address.is_power_of_two() && address >= 1 << 50 {
        return format!("2^{}", address.trailing_zeros());
    }
    let top = if address.leading_zeros() < 14 { 1u64 << (63 - address.leading_zeros()) } else { 0 };
    if top != 0 && top != address {
        return format!("2^{}+{}", top.trailing_zeros(), short_address(address - top));
    }
    const UNITS: [(&str, u32); 5] = [("P", 50), ("T", 40), ("G", 30), ("M", 20), ("K", 10)];
    for (unit, shift) in UNITS {
        let one = 1u64 << shift;
        if address >= one && address.is_multiple_of(one) {
            return format!("{}{unit}", address >> shift);
        }
    }
    format!("{address:#x}")
}

/// A page size given as its shift: `4K`, `64K`, `2M`, `16M`, `16G`.
pub fn page(shift: u32) -> String {
    match shift {
        0..=9 => format!("{}", 1u64 << shift),
        10..=19 => format!("{}K", 1u64 << (shift - 10)),
        20..=29 => format!("{}M", 1u64 << (shift - 20)),
        30..=39 => format!("{}G", 1u64 << (shift - 30)),
        _ => format!("2^{shift}"),
    }
}

/// The page sizes of a `pe.N.query.page_sizes` mask (LoPAR's bits: 0x1 4K, 0x2 64K, 0x4 16M,
/// 0x8 32M, 0x10 64M, 0x20 128M, 0x40 256M, 0x80 16G, 0x100 2M), smallest first; unknown bits
/// are named by their value.
pub fn page_sizes(mask: u64) -> Vec<String> {
    const BITS: [(u64, u32); 9] = [
        (0x1, 12),
        (0x2, 16),
        (0x100, 21),
        (0x4, 24),
        (0x8, 25),
        (0x10, 26),
        (0x20, 27),
        (0x40, 28),
        (0x80, 34),
    ];
    let mut names: Vec<String> =
        BITS.iter().filter(|(bit, _)| mask & bit != 0).map(|&(_, s)| page(s)).collect();
    let known = BITS.iter().fold(0, |all, (bit, _)| all | bit);
    let mut unknown = mask & !known;
    while unknown != 0 {
        let bit = unknown & unknown.wrapping_neg();
        names.push(format!("bit {bit:#x}"));
        unknown &= !bit;
    }
    names
}

/// `1 range`, `2 ranges`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Timebase ticks as milliseconds at `hz`.
pub fn ticks_ms(ticks: u64, hz: u64) -> f64 {
    ticks as f64 * 1e3 / hz as f64
}

/// A frequency in MHz without trailing zeros (`512 MHz`, `1.5 MHz`).
pub fn mhz(hz: u64) -> String {
    if hz.is_multiple_of(1_000_000) {
        format!("{} MHz", hz / 1_000_000)
    } else {
        format!("{:.3} MHz", hz as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_the_largest_exact_unit() {
        assert_eq!(size(1 << 30), "1 GiB");
        assert_eq!(size(1 << 31), "2 GiB");
        assert_eq!(size(1 << 40), "1 TiB");
        assert_eq!(size(0x1000), "4 KiB");
        assert_eq!(size(4095), "4.0 KiB");
        assert_eq!(size(3 << 29), "1536 MiB");
        assert_eq!(size(1), "1 byte");
        assert_eq!(size(0), "0 bytes");
    }

    #[test]
    fn short_addresses() {
        assert_eq!(short_address(0), "0");
        assert_eq!(short_address(1 << 31), "2G");
        assert_eq!(short_address(1 << 32), "4G");
        assert_eq!(short_address(0x2100_0000_0000), "33T");
        assert_eq!(short_address(1 << 59), "2^59");
        assert_eq!(short_address((1 << 59) + (1 << 31)), "2^59+2G");
        assert_eq!(short_address(0x1234), "0x1234");
    }

    #[test]
    fn pages_and_masks() {
        assert_eq!(page(12), "4K");
        assert_eq!(page(16), "64K");
        assert_eq!(page(21), "2M");
        assert_eq!(page(24), "16M");
        assert_eq!(page(34), "16G");
        assert_eq!(page_sizes(0x107), vec!["4K", "64K", "2M", "16M"]);
        assert_eq!(page_sizes(0x1 | 0x400), vec!["4K", "bit 0x400"]);
        assert!(page_sizes(0).is_empty());
    }

    #[test]
    fn time() {
        assert_eq!(ticks_ms(512_000_000, 512_000_000), 1000.0);
        assert_eq!(mhz(512_000_000), "512 MHz");
        assert_eq!(count(1, "disk"), "1 disk");
        assert_eq!(count(0, "failure"), "0 failures");
    }
}
