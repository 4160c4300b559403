//! Errors for device-tree parsing and building.

use core::fmt;

/// What went wrong with a device-tree property, node or blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DtError {
    /// A required property is missing.
    Missing {
        /// Node path (or name).
        node: &'static str,
        /// Property name.
        prop: &'static str,
    },
    /// A property has a length that does not fit its format.
    BadLength {
        /// Property name.
        prop: &'static str,
        /// Actual length in bytes.
        len: usize,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// A property's contents are not valid for its format.
    BadValue {
        /// Property name.
        prop: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// The blob or tree being built is malformed or exceeds a limit.
    Malformed(&'static str),
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtError::Missing { node, prop } => write!(f, "{node}: property {prop} is missing"),
            DtError::BadLength { prop, len, expected } => {
                write!(f, "property {prop} is {len} bytes long, expected {expected}")
            }
            DtError::BadValue { prop, why } => write!(f, "property {prop}: {why}"),
            DtError::Malformed(why) => write!(f, "malformed device tree: {why}"),
        }
    }
}
