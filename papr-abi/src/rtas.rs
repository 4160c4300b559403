//! The RTAS status word (rets[0] of every call).
//!
//! LoPAR "RTAS Call Interface" and the status table of each call: 0 success, −1 hardware
//! error, −2 busy (call again), −3 parameter error, 9900–9905 extended delay (wait
//! 10^(s−9900) ms, then call again; Linux `rtas_busy_delay_time`). An open set: a newtype.

use core::fmt;

/// An RTAS status word.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RtasStatus(pub i32);

impl RtasStatus {
    /// Success.
    pub const SUCCESS: Self = Self(0);
    /// Hardware error (QEMU also answers it for an absent PCI device).
    pub const HARDWARE_ERROR: Self = Self(-1);
    /// Busy: call again.
    pub const BUSY: Self = Self(-2);
    /// Parameter error.
    pub const PARAMETER_ERROR: Self = Self(-3);
    /// Unexpected state change.
    pub const UNEXPECTED_STATE_CHANGE: Self = Self(-7);

    /// What the status means.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0 => "success",
            -1 => "hardware error",
            -2 => "busy",
            -3 => "parameter error",
            -7 => "unexpected state change",
            9900..=9905 => "extended delay",
            _ => "unknown status",
        }
    }

    /// True for the extended-delay hints 9900..=9905.
    pub const fn is_extended_delay(self) -> bool {
        self.0 >= 9900 && self.0 <= 9905
    }
}

impl fmt::Debug for RtasStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0, self.name())
    }
}

impl fmt::Display for RtasStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(format!("{}", RtasStatus(-3)), "-3 (parameter error)");
        assert_eq!(RtasStatus(9903).name(), "extended delay");
        assert_eq!(RtasStatus(7).name(), "unknown status");
        assert!(RtasStatus(9900).is_extended_delay() && !RtasStatus(-2).is_extended_delay());
    }
}
