//! The C memory functions the precompiled `core` of a `-linux-gnu` target calls.
//!
//! `#![no_builtins]` keeps LLVM from turning these loops back into calls to themselves
//! (the precompiled `core` of the stable toolchain calls them). Byte loops are enough: the kernel copies
//! little data on hot paths.
#![no_std]
#![no_builtins]
#![cfg(target_arch = "powerpc64")]

/// # Safety
/// `dest` and `src` must be valid for `n` bytes and must not overlap.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n and both ranges are valid for n bytes (caller contract).
        unsafe { *dest.add(i) = *src.add(i) };
        i += 1;
    }
    dest
}

/// # Safety
/// `dest` and `src` must be valid for `n` bytes; they may overlap.
#[no_mangle]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize) <= (src as usize) {
        let mut i = 0;
        while i < n {
            // SAFETY: forward copy is safe when dest precedes src; ranges valid (contract).
            unsafe { *dest.add(i) = *src.add(i) };
            i += 1;
        }
    } else {
        let mut i = n;
        while i > 0 {
            i -= 1;
            // SAFETY: backward copy is safe when dest follows src; ranges valid (contract).
            unsafe { *dest.add(i) = *src.add(i) };
        }
    }
    dest
}

/// # Safety
/// `dest` must be valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memset(dest: *mut u8, value: i32, n: usize) -> *mut u8 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n and dest is valid for n bytes (caller contract).
        unsafe { *dest.add(i) = value as u8 };
        i += 1;
    }
    dest
}

/// # Safety
/// `a` and `b` must be valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n and both are valid for n bytes (caller contract).
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// # Safety
/// `a` and `b` must be valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// # Safety
/// `s` must point to a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the string is NUL-terminated (caller contract), so every byte up to it is valid.
    while unsafe { *s.add(n) } != 0 {
        n += 1;
    }
    n
}

/// The precompiled `core` is built with unwinding and references this symbol; the kernel
/// aborts on panic, so it is never called.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

/// Precompiled `alloc` has landing pads that resume unwinding; with `panic = "abort"` no
/// unwinding ever starts, so this is unreachable.
#[no_mangle]
pub extern "C" fn _Unwind_Resume() -> ! {
    loop {
        core::hint::spin_loop();
    }
}
