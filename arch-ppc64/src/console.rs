//! The hypervisor virtual terminal: `H_PUT_TERM_CHAR` (hcall 0x58).
//!
//! r4 = vterm number (the `reg` of `/vdevice/vty@…`), r5 = length ≤ 16, r6/r7 = bytes 0–7 and
//! 8–15 packed big-endian; H_BUSY means retry (LoPAR "H_PUT_TERM_CHAR"; QEMU hw/char/spapr_vty.c `h_put_term_char`).
//! Until the device tree names the vterm, number 0 is used: QEMU then picks the vty with the
//! lowest `reg` (hw/ppc/spapr_vty.c vty_lookup), which is exactly the early-console case.

use crate::hcall::{hcall_values, opcode, HcallStatus};
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

static VTERM: AtomicU32 = AtomicU32::new(0);

/// Upper bound on H_BUSY retries for one chunk, so a wedged console cannot hang the kernel.
const BUSY_RETRIES: u32 = 100_000;

/// Selects the vterm to write to (from the device tree).
pub fn set_vterm(vterm: u32) {
    VTERM.store(vterm, Ordering::Relaxed);
}

/// Writes raw bytes to the console, 16 at a time. Errors are dropped: there is nowhere
/// else to report them.
pub fn write_bytes(bytes: &[u8]) {
    for chunk in bytes.chunks(16) {
        let mut packed = [0u8; 16];
        packed[..chunk.len()].copy_from_slice(chunk);
        let args = [
            u64::from(VTERM.load(Ordering::Relaxed)),
            chunk.len() as u64,
            u64::from_be_bytes(packed[..8].try_into().unwrap_or([0; 8])),
            u64::from_be_bytes(packed[8..].try_into().unwrap_or([0; 8])),
        ];
        for _ in 0..BUSY_RETRIES {
            // SAFETY: H_PUT_TERM_CHAR takes the bytes in registers; no memory is named.
            let ret = unsafe { hcall_values(opcode::H_PUT_TERM_CHAR, &args) };
            if ret.status != HcallStatus::BUSY {
                break;
            }
        }
    }
}

/// A `fmt::Write` sink that turns `\n` into `\r\n`.
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s.as_bytes();
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            write_bytes(&rest[..pos]);
            write_bytes(b"\r\n");
            rest = &rest[pos + 1..];
        }
        write_bytes(rest);
        Ok(())
    }
}

/// Prints to the console (no lock: the kernel runs on one CPU).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::console::Console, format_args!($($arg)*));
    }};
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {{
        $crate::print!($($arg)*);
        $crate::print!("\n");
    }};
}
