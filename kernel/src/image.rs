//! Where the kernel image sits in memory (symbols from `linker.ld`).

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// `(start, end)` physical addresses of the loaded kernel, `.bss` and stacks included.
pub fn bounds() -> (u64, u64) {
    // Taking the address of an extern static is safe; the linker script defines both.
    let start = core::ptr::addr_of!(__image_start) as u64;
    let end = core::ptr::addr_of!(__image_end) as u64;
    (start, end)
}
