//! The big-endian real-mode trampoline shared by Open Firmware and instantiated RTAS.

extern "C" {
    fn ppc_firmware_call(arg0: u64, arg1: u64, entry: u64) -> u64;
}

/// Calls firmware at `entry` with r3 = `arg0`, r4 = `arg1`, in big-endian real mode
/// (`entry.S`, `ppc_firmware_call`), and returns r3.
///
/// # Safety
/// `entry` must be a firmware entry point that follows the OF client-interface or RTAS
/// calling convention, and `arg0`/`arg1` must be what that entry expects (a big-endian
/// argument array below 4 GiB that stays valid for the call).
pub unsafe fn call(arg0: u64, arg1: u64, entry: u64) -> u64 {
    // SAFETY: forwarded to the caller's contract; the trampoline saves and restores every
    // register the Rust ABI requires to be preserved.
    unsafe { ppc_firmware_call(arg0, arg1, entry) }
}
