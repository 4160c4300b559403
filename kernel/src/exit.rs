//! Leaving the partition: RTAS `power-off` on success, `ibm,os-term` on failure.
//!
//! QEMU exits 0 after `power-off` (nargs 2 = {0, 0}); after `ibm,os-term` (1 argument: a
//! message address) it prints "OS terminated: <msg>" and, with `-action panic=exit-failure`,
//! exits 1 (QEMU hw/ppc/spapr_rtas.c `rtas_ibm_os_term`, `rtas_power_off`). If RTAS is
//! unusable the kernel says so and spins; the harness's timeout then reports the hang with the
//! console tail.

use arch_ppc64::println;
use core::fmt::Write;
use spin::Mutex;

use crate::boundary::rtas::{Firmware, ValueCall};

/// RTAS and the two tokens needed to leave, recorded once RTAS is known.
#[derive(Clone, Copy)]
pub struct ExitPath {
    /// How to call RTAS.
    pub firmware: Firmware,
    /// `power-off` token.
    pub power_off: Option<u32>,
    /// `ibm,os-term` token.
    pub os_term: Option<u32>,
}

static EXIT: spin::Once<ExitPath> = spin::Once::new();

/// Records how to leave (first call wins).
pub fn set_exit_path(path: ExitPath) {
    EXIT.call_once(|| path);
}

/// Prints the success marker and powers off (QEMU exits 0).
pub fn power_off() -> ! {
    println!("exit.status=ok");
    if let Some(ExitPath { firmware, power_off: Some(token), .. }) = EXIT.get().copied() {
        let status = firmware.value_call(ValueCall::PowerOff, token, &[0, 0], &mut []);
        println!("error: RTAS power-off returned {:?}", status);
    } else {
        println!("error: cannot power off: RTAS or its power-off token is unknown");
    }
    halt()
}

/// The failure message: a buffer that needs no heap (panics may come from the allocator),
/// kept in `.bss` so that the address handed to `ibm,os-term` is below 4 GiB.
static MESSAGE: Mutex<FixedText> = Mutex::new(FixedText { bytes: [0; 256], len: 0 });

/// Prints the failure marker and `message`, then terminates with `ibm,os-term`.
pub fn fail(message: core::fmt::Arguments<'_>) -> ! {
    // A failure while failing (the lock already held) still says something and stops.
    let Some(mut text) = MESSAGE.try_lock() else {
        println!("error: {message} (while already failing)");
        println!("exit.status=fail");
        halt()
    };
    text.len = 0;
    let _ = text.write_fmt(message);
    println!("error: {}", text.as_str());
    println!("exit.status=fail");
    if let Some(ExitPath { firmware, os_term: Some(token), .. }) = EXIT.get().copied() {
        let status = firmware.os_term(token, text.terminated());
        println!("error: RTAS ibm,os-term returned {:?}", status);
    } else if let Some(ExitPath { firmware, power_off: Some(token), .. }) = EXIT.get().copied() {
        println!("error: no ibm,os-term token; powering off (QEMU exit status will be 0)");
        let _ = firmware.value_call(ValueCall::PowerOff, token, &[0, 0], &mut []);
    } else {
        println!("error: RTAS is not available yet; halting");
    }
    halt()
}

fn halt() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

struct FixedText {
    bytes: [u8; 256],
    len: usize,
}

impl FixedText {
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("(message not UTF-8)")
    }

    /// The message with its NUL terminator.
    fn terminated(&mut self) -> &[u8] {
        let end = self.len.min(self.bytes.len() - 1);
        self.bytes[end] = 0;
        &self.bytes[..=end]
    }
}

impl Write for FixedText {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.bytes.len() - 1 - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}
