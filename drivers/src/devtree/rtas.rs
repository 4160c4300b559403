//! The `/rtas` node: RTAS call tokens, hypervisor function sets and the RTAS image size.
//!
//! LoPAR (Run-Time Abstraction Services, "RTAS Node Properties") gives every RTAS call a token as
//! a one-cell property named after the call (`power-off`, `ibm,read-pci-config`, …); QEMU
//! `spapr_dt_rtas_tokens` writes `RTAS_TOKEN_BASE (0x2000) + n` for each call it implements, so
//! tokens must be read, never hard-coded (LoPAR "RTAS Device Tree Properties"; QEMU `spapr_rtas_register` numbers them at run time). The same node holds
//! other one-cell properties that are *not* tokens; QEMU 7.2 `spapr_dt_rtas` writes `rtas-size`,
//! `rtas-error-log-max`, `rtas-event-scan-rate`, `ibm,lrdr-capacity`, the NUMA properties of
//! `spapr_numa_write_rtas_dt` and the empty flags `ibm,extended-os-term` and
//! `ibm,change-msix-capable`. The rule used here: **a token is a property whose value is exactly
//! 4 bytes and whose name is not in [`NON_TOKEN_PROPERTIES`]**; the value 0xffffffff
//! (RTAS_UNKNOWN_SERVICE) means "not implemented" and is dropped.
//!
//! `ibm,hypertas-functions` is a string list of hcall function sets (`hcall-multi-tce` says
//! H_PUT_TCE_INDIRECT / H_STUFF_TCE exist; QEMU omits it under KVM without multi-TCE support).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use fdt::Fdt;

use crate::devtree::cells::{be_u32, string_list};
use crate::devtree::error::DtError;

/// One-cell `/rtas` properties that are not call tokens (LoPAR RTAS node properties, QEMU
/// `spapr_dt_rtas` and `spapr_numa_write_rtas_dt`, Linux prom_init's `linux,rtas-*`).
pub const NON_TOKEN_PROPERTIES: &[&str] = &[
    "#address-cells",
    "#size-cells",
    "name",
    "phandle",
    "linux,phandle",
    "ibm,phandle",
    "linux,rtas-base",
    "linux,rtas-entry",
    "rtas-size",
    "rtas-version",
    "rtas-error-log-max",
    "rtas-event-scan-rate",
    "rtas-display-device",
    "ibm,extended-os-term",
    "ibm,change-msix-capable",
    "ibm,lrdr-capacity",
    "ibm,max-associativity-domains",
    "ibm,associativity-reference-points",
    "ibm,current-associativity-domains",
    "ibm,numa-lookup-index-table",
    "ibm,numa-distance-table",
    "ibm,configure-kernel-dump-sizes",
    "ibm,configure-kernel-dump-version",
    "ibm,errinjct-tokens",
    "ibm,hypertas-functions",
    "qemu,hypertas-functions",
];

/// RTAS_UNKNOWN_SERVICE: a token value meaning the call is not implemented.
const UNKNOWN_SERVICE: u32 = 0xffff_ffff;

/// What `/rtas` says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RtasInfo {
    /// (call name, token), sorted by name.
    pub tokens: Vec<(String, u32)>,
    /// Entries of `ibm,hypertas-functions`, in property order.
    pub hypertas: Vec<String>,
    /// `rtas-size`: bytes to reserve when instantiating RTAS.
    pub rtas_size: Option<u32>,
}

impl RtasInfo {
    /// Builds the summary from the node's (name, value) properties.
    pub fn from_properties<'p>(
        properties: impl IntoIterator<Item = (&'p str, &'p [u8])>,
    ) -> Result<Self, DtError> {
        let mut info = RtasInfo::default();
        for (name, value) in properties {
            match name {
                "rtas-size" => info.rtas_size = Some(be_u32("rtas-size", value)?),
                "ibm,hypertas-functions" => {
                    info.hypertas = string_list(value).into_iter().map(str::to_string).collect();
                }
                _ if is_token_property(name, value) => {
                    // Length checked by is_token_property, so this cannot fail.
                    let token = be_u32("RTAS token", value)?;
                    if token != UNKNOWN_SERVICE {
                        info.tokens.push((name.to_string(), token));
                    }
                }
                _ => {}
            }
        }
        info.tokens.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(info)
    }

    /// The token of RTAS call `name`, if firmware provides it.
    pub fn token(&self, name: &str) -> Option<u32> {
        self.tokens
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .and_then(|i| self.tokens.get(i))
            .map(|(_, token)| *token)
    }

    /// True if `ibm,hypertas-functions` lists `function_set` (e.g. `"hcall-multi-tce"`).
    pub fn has_hypertas(&self, function_set: &str) -> bool {
        self.hypertas.iter().any(|f| f == function_set)
    }
}

/// The token rule: exactly 4 bytes and not a known non-token property.
pub fn is_token_property(name: &str, value: &[u8]) -> bool {
    value.len() == 4 && !NON_TOKEN_PROPERTIES.contains(&name)
}

/// Reads `/rtas`; `None` if the tree has no such node.
pub fn rtas_info(fdt: &Fdt<'_>) -> Result<Option<RtasInfo>, DtError> {
    match fdt.find_node("/rtas") {
        Some(node) => RtasInfo::from_properties(node.properties().map(|p| (p.name, p.value))).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("power-off", 0x2003u32.to_be_bytes().to_vec()),
            ("ibm,read-pci-config", 0x2013u32.to_be_bytes().to_vec()),
            ("get-time-of-day", 0x2001u32.to_be_bytes().to_vec()),
            ("ibm,not-here", UNKNOWN_SERVICE.to_be_bytes().to_vec()),
            ("rtas-size", 0x2a38u32.to_be_bytes().to_vec()),
            ("rtas-error-log-max", 2048u32.to_be_bytes().to_vec()),
            ("phandle", 7u32.to_be_bytes().to_vec()),
            ("ibm,extended-os-term", Vec::new()),
            ("ibm,lrdr-capacity", vec![0; 20]),
            ("ibm,hypertas-functions", b"hcall-tce\0hcall-multi-tce\0".to_vec()),
            ("some-string", b"abc\0def\0".to_vec()),
        ]
    }

    fn parse(props: &[(&'static str, Vec<u8>)]) -> Result<RtasInfo, DtError> {
        RtasInfo::from_properties(props.iter().map(|(n, v)| (*n, v.as_slice())))
    }

    #[test]
    fn tokens_sorted_and_filtered() {
        let info = parse(&props()).unwrap();
        let names: Vec<&str> = info.tokens.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["get-time-of-day", "ibm,read-pci-config", "power-off"]);
        assert_eq!(info.token("power-off"), Some(0x2003));
        assert_eq!(info.token("ibm,read-pci-config"), Some(0x2013));
        assert_eq!(info.token("ibm,not-here"), None);
        assert_eq!(info.token("rtas-size"), None);
        assert_eq!(info.token("phandle"), None);
        assert_eq!(info.rtas_size, Some(0x2a38));
        assert!(info.has_hypertas("hcall-multi-tce"));
        assert!(!info.has_hypertas("hcall-multi"));
    }

    #[test]
    fn malformed_rtas_size_is_an_error() {
        let mut bad = props();
        bad.push(("rtas-size", vec![0, 0, 0x2a]));
        assert!(matches!(parse(&bad), Err(DtError::BadLength { prop: "rtas-size", len: 3, .. })));
        let oversized = vec![("rtas-size", vec![0; 8])];
        assert!(parse(&oversized).is_err());
    }

    #[test]
    fn odd_sized_properties_are_not_tokens() {
        let odd = vec![("power-off", vec![0, 0, 0x20]), ("ibm,os-term", vec![0; 8])];
        let info = parse(&odd).unwrap();
        assert!(info.tokens.is_empty());
        let bad_strings = vec![("ibm,hypertas-functions", b"\xff\xfe\0hcall-tce".to_vec())];
        assert_eq!(parse(&bad_strings).unwrap().hypertas, ["hcall-tce"]);
    }
}
