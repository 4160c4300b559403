//! Walking an IEEE 1275 Open Firmware device tree and flattening it into an FDT blob.
//!
//! On SLOF and VOF boots the device tree lives inside firmware and is only reachable through
//! the client interface. Like Linux's prom_init, the kernel copies it once, early, into a
//! flattened tree so that every boot path ends with the same `fdt`-crate parser. The firmware
//! calls are abstracted by [`OfTree`]; the kernel implements it with real client-interface
//! calls and the tests with a fake tree.
//!
//! Facts relied on:
//! - IEEE 1275 client interface: peer/child/nextprop/getprop/package-to-path. `peer(0)` is the
//!   root, `peer`/`child` return 0 (or -1) at the end, `nextprop` with an empty previous name
//!   yields the first property, `package-to-path` gives the full path whose last component is
//!   the node's name with unit address;
//! - the `name` property holds the node name without unit address (fallback only);
//! - SLOF does not expose a `phandle` property but `interrupt-map`/`interrupt-parent` values are
//!   OF phandles, so a `phandle` property equal to the OF handle is added when missing (VOF
//!   lists `phandle` among its properties);
//! - devicetree spec v0.4 §5 (FDT format): the root node name is empty, properties precede
//!   subnodes (see [`super::writer`]).
//!
//! Firmware is not trusted to be well-formed: node count, depth, property count and sizes are
//! bounded by [`FlattenLimits`] so a peer cycle or a looping `nextprop` cannot hang the boot.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::error::DtError;
use super::writer::FdtWriter;

/// An OF package handle (phandle). 0 means "none".
pub type Phandle = u32;

/// The client-interface services the walk needs; the kernel implements this with real OF calls
/// (SLOF, VOF), tests with a fake tree.
pub trait OfTree {
    /// `peer`: next sibling of `node`; `peer(0)` is the root. None at the end (OF returns 0 or
    /// -1 as u32).
    fn peer(&mut self, node: Phandle) -> Option<Phandle>;
    /// `child`: first child, None if none.
    fn child(&mut self, node: Phandle) -> Option<Phandle>;
    /// `nextprop`: writes the name of the property after `previous` ("" = first) into `buf`,
    /// returns its length without NUL; Ok(None) at the end.
    fn next_property(
        &mut self,
        node: Phandle,
        previous: &str,
        buf: &mut [u8; 64],
    ) -> Result<Option<usize>, DtError>;
    /// `getproplen`: length of a property, None if absent.
    fn property_length(&mut self, node: Phandle, name: &str) -> Option<usize>;
    /// `getprop`: copies the value into `buf` (sized by the caller from property_length),
    /// returns bytes copied.
    fn property(&mut self, node: Phandle, name: &str, buf: &mut [u8]) -> Option<usize>;
    /// `package-to-path`: full path of `node` into `buf`, returns length; None if unsupported.
    fn path(&mut self, node: Phandle, buf: &mut [u8]) -> Option<usize>;
}

/// Limits that keep a buggy or hostile firmware from hanging or exhausting the walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlattenLimits {
    /// Most nodes copied; more is an error (a peer cycle ends here).
    pub max_nodes: usize,
    /// Deepest node copied, the root being depth 0; deeper is an error (a child cycle ends here).
    pub max_depth: usize,
    /// Longer properties are skipped and counted in [`FlattenStats::skipped_properties`].
    pub max_property_len: usize,
    /// A node's `nextprop` walk stops after this many properties.
    pub max_properties_per_node: usize,
    /// Largest blob produced; more is an error.
    pub max_total_bytes: usize,
}

impl Default for FlattenLimits {
    /// 4096 nodes, depth 16, 1 MiB per property, 512 properties per node, 16 MiB in total.
    fn default() -> Self {
        Self {
            max_nodes: 4096,
            max_depth: 16,
            max_property_len: 1 << 20,
            max_properties_per_node: 512,
            max_total_bytes: 16 << 20,
        }
    }
}

/// Statistics of a walk (for the boot report).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlattenStats {
    /// Nodes copied.
    pub nodes: usize,
    /// Properties copied from firmware (added `phandle` properties not included).
    pub properties: usize,
    /// Size of the resulting blob in bytes.
    pub bytes: usize,
    /// Properties left out: too long, or their length or value could not be read.
    pub skipped_properties: usize,
}

/// Longest `package-to-path` result accepted; longer paths fall back to the `name` property.
const PATH_BUFFER_LEN: usize = 1024;
/// Longest `name` property accepted for the fallback node name.
const NAME_PROPERTY_MAX_LEN: usize = 256;
/// The error for a tree that does not fit `max_total_bytes`.
const TOO_BIG: DtError = DtError::Malformed("flattened device tree exceeds max_total_bytes");

/// Walks the whole tree from the root and returns an FDT blob plus stats. `reservations` go into
/// the reservation block.
///
/// The blob's `boot_cpuid_phys` is 0. Fails with [`DtError::Malformed`] if firmware has no
/// root, if a limit in `limits` other than the per-property and per-node ones is exceeded, or
/// if `nextprop` itself fails.
pub fn flatten(
    tree: &mut impl OfTree,
    reservations: &[(u64, u64)],
    limits: &FlattenLimits,
) -> Result<(Vec<u8>, FlattenStats), DtError> {
    let mut walk = Walk { tree, limits, writer: FdtWriter::new(), stats: FlattenStats::default() };
    for &(base, size) in reservations {
        walk.writer.add_reservation(base, size);
    }
    let root =
        valid_handle(walk.tree.peer(0)).ok_or(DtError::Malformed("firmware device tree has no root node"))?;

    // Iterative depth-first walk: `ancestors` holds the open nodes above `current`.
    let mut ancestors: Vec<Phandle> = Vec::new();
    let mut current = root;
    walk.copy_node(current, 0)?;
    'descend: loop {
        if let Some(child) = valid_handle(walk.tree.child(current)) {
            walk.copy_node(child, ancestors.len().saturating_add(1))?;
            ancestors.push(current);
            current = child;
            continue;
        }
        // `current` has no (more) children: close it, then go to its peer or back up.
        loop {
            walk.writer.end_node()?;
            let Some(&parent) = ancestors.last() else {
                break 'descend; // The root's peers are not part of the tree.
            };
            if let Some(peer) = valid_handle(walk.tree.peer(current)) {
                walk.copy_node(peer, ancestors.len())?;
                current = peer;
                continue 'descend;
            }
            ancestors.pop();
            current = parent;
        }
    }

    let blob = walk.writer.finish(0)?;
    let mut stats = walk.stats;
    stats.bytes = blob.len(); // Equals the last encoded_len() checked against the limit.
    Ok((blob, stats))
}

/// OF returns 0 or -1 for "no such node"; trust neither even if the trait impl forgot to.
fn valid_handle(handle: Option<Phandle>) -> Option<Phandle> {
    handle.filter(|&handle| handle != 0 && handle != u32::MAX)
}

/// State of one [`flatten`] call.
struct Walk<'a, T: OfTree> {
    tree: &'a mut T,
    limits: &'a FlattenLimits,
    writer: FdtWriter,
    stats: FlattenStats,
}

impl<T: OfTree> Walk<'_, T> {
    /// Opens `node` at `depth` in the writer and copies its properties; the node stays open.
    fn copy_node(&mut self, node: Phandle, depth: usize) -> Result<(), DtError> {
        if self.stats.nodes >= self.limits.max_nodes {
            return Err(DtError::Malformed("more nodes than max_nodes (peer/child loop?)"));
        }
        if depth > self.limits.max_depth {
            return Err(DtError::Malformed("tree deeper than max_depth (child loop?)"));
        }
        let name = if depth == 0 { String::new() } else { self.node_name(node) };
        self.writer.begin_node(&name)?;
        self.stats.nodes = self.stats.nodes.saturating_add(1);
        self.check_size()?;
        self.copy_properties(node)
    }

    /// The node's FDT name: last path component, else the `name` property, else `unknown@<ph>`.
    fn node_name(&mut self, node: Phandle) -> String {
        let mut path = vec![0u8; PATH_BUFFER_LEN];
        let from_path = self
            .tree
            .path(node, &mut path)
            .and_then(|length| path.get(..length))
            .map(until_nul)
            .and_then(|path| core::str::from_utf8(path).ok())
            .and_then(|path| path.rsplit('/').next())
            .filter(|component| is_valid_node_name(component))
            .map(String::from);
        if let Some(name) = from_path {
            return name;
        }
        let mut value = [0u8; NAME_PROPERTY_MAX_LEN];
        let from_property = self
            .tree
            .property_length(node, "name")
            .filter(|&length| length <= value.len())
            .and_then(|length| value.get_mut(..length))
            .and_then(|buffer| {
                let copied = self.tree.property(node, "name", buffer)?;
                buffer.get(..copied.min(buffer.len()))
            })
            .map(until_nul)
            .and_then(|name| core::str::from_utf8(name).ok())
            .filter(|name| is_valid_node_name(name))
            .map(String::from);
        from_property.unwrap_or_else(|| format!("unknown@{node:x}"))
    }

    /// Copies `node`'s properties in `nextprop` order and adds `phandle` if firmware has none.
    fn copy_properties(&mut self, node: Phandle) -> Result<(), DtError> {
        let mut previous = String::new();
        let mut has_phandle = false;
        for _ in 0..self.limits.max_properties_per_node {
            let mut name_buffer = [0u8; 64];
            let Some(length) = self.tree.next_property(node, &previous, &mut name_buffer)? else {
                break;
            };
            let Some(name) = name_buffer
                .get(..length)
                .map(until_nul)
                .and_then(|name| core::str::from_utf8(name).ok())
                .filter(|name| !name.is_empty())
            else {
                // Without a usable name there is no way to ask for the next one.
                self.stats.skipped_properties = self.stats.skipped_properties.saturating_add(1);
                break;
            };
            if name == previous {
                break; // Firmware repeats itself: it would loop forever.
            }
            if self.copy_property(node, name)? && name == "phandle" {
                has_phandle = true;
            }
            previous = String::from(name);
        }
        if !has_phandle {
            self.writer.property_u32("phandle", node)?;
            self.check_size()?;
        }
        Ok(())
    }

    /// Copies one property; `Ok(false)` if it was skipped.
    fn copy_property(&mut self, node: Phandle, name: &str) -> Result<bool, DtError> {
        let Some(length) =
            self.tree.property_length(node, name).filter(|&length| length <= self.limits.max_property_len)
        else {
            self.stats.skipped_properties = self.stats.skipped_properties.saturating_add(1);
            return Ok(false);
        };
        if self.writer.encoded_len().saturating_add(length) > self.limits.max_total_bytes {
            return Err(TOO_BIG);
        }
        let mut value = vec![0u8; length];
        let Some(copied) = self.tree.property(node, name, &mut value) else {
            self.stats.skipped_properties = self.stats.skipped_properties.saturating_add(1);
            return Ok(false);
        };
        value.truncate(copied);
        self.writer.property(name, &value)?;
        self.stats.properties = self.stats.properties.saturating_add(1);
        self.check_size()?;
        Ok(true)
    }

    /// Fails once the blob would exceed `max_total_bytes`.
    fn check_size(&self) -> Result<(), DtError> {
        if self.writer.encoded_len() > self.limits.max_total_bytes {
            return Err(TOO_BIG);
        }
        Ok(())
    }
}

/// `bytes` up to (not including) the first NUL.
fn until_nul(bytes: &[u8]) -> &[u8] {
    bytes.split(|&byte| byte == 0).next().unwrap_or(bytes)
}

/// Whether the writer accepts `name` for a non-root node.
fn is_valid_node_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    type Properties = Vec<(&'static str, Vec<u8>)>;

    /// A nested description of a fake tree node: name (ignored for the root), properties, children.
    struct Spec(&'static str, Properties, Vec<Spec>);

    struct FakeNode {
        path: String,
        properties: Properties,
        child: Option<Phandle>,
        peer: Option<Phandle>,
    }

    /// How the fake firmware answers `nextprop`.
    #[derive(Clone, Copy)]
    enum NextProp {
        Correct,
        /// Always returns the first name (a looping SLOF).
        Stuck,
        /// Wraps around to the first property after the last one.
        Wrapping,
    }

    /// A firmware tree in memory; depth-first node `i` has phandle `0x100 + i`.
    struct FakeOfTree {
        nodes: Vec<FakeNode>,
        path_works: bool,
        next_prop: NextProp,
    }

    impl FakeOfTree {
        fn new(root: Spec) -> Self {
            let mut tree = Self { nodes: Vec::new(), path_works: true, next_prop: NextProp::Correct };
            tree.add(root, "");
            tree
        }

        fn add(&mut self, Spec(name, properties, children): Spec, parent: &str) -> Phandle {
            let path = if self.nodes.is_empty() { String::new() } else { format!("{parent}/{name}") };
            let index = self.nodes.len();
            let shown_path = if path.is_empty() { String::from("/") } else { path.clone() };
            self.nodes.push(FakeNode { path: shown_path, properties, child: None, peer: None });
            let handles: Vec<Phandle> = children.into_iter().map(|c| self.add(c, &path)).collect();
            self.nodes[index].child = handles.first().copied();
            for pair in handles.windows(2) {
                self.node(pair[0]).unwrap().peer = Some(pair[1]);
            }
            0x100 + index as Phandle
        }

        fn node(&mut self, handle: Phandle) -> Option<&mut FakeNode> {
            self.nodes.get_mut(handle.checked_sub(0x100)? as usize)
        }

        fn value(&mut self, node: Phandle, name: &str) -> Option<Vec<u8>> {
            let properties = &self.node(node)?.properties;
            properties.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
        }
    }

    impl OfTree for FakeOfTree {
        fn peer(&mut self, node: Phandle) -> Option<Phandle> {
            if node == 0 {
                Some(0x100).filter(|_| !self.nodes.is_empty())
            } else {
                self.node(node)?.peer
            }
        }

        fn child(&mut self, node: Phandle) -> Option<Phandle> {
            self.node(node)?.child
        }

        fn next_property(
            &mut self,
            node: Phandle,
            previous: &str,
            buf: &mut [u8; 64],
        ) -> Result<Option<usize>, DtError> {
            let mode = self.next_prop;
            let properties = &self.node(node).ok_or(DtError::Malformed("bad node"))?.properties;
            let next = match (mode, properties.iter().position(|(n, _)| *n == previous)) {
                (NextProp::Stuck, _) | (_, None) => 0,
                (NextProp::Wrapping, Some(i)) => (i + 1) % properties.len(),
                (NextProp::Correct, Some(i)) => i + 1,
            };
            let Some((name, _)) = properties.get(next) else {
                return Ok(None);
            };
            buf[..name.len()].copy_from_slice(name.as_bytes());
            Ok(Some(name.len()))
        }

        fn property_length(&mut self, node: Phandle, name: &str) -> Option<usize> {
            self.value(node, name).filter(|v| v != b"unreadable").map(|v| v.len())
        }

        fn property(&mut self, node: Phandle, name: &str, buf: &mut [u8]) -> Option<usize> {
            let value = self.value(node, name)?;
            buf.get_mut(..value.len())?.copy_from_slice(&value);
            Some(value.len())
        }

        fn path(&mut self, node: Phandle, buf: &mut [u8]) -> Option<usize> {
            let path = self.node(node)?.path.clone();
            buf.get_mut(..path.len()).filter(|_| self.path_works)?.copy_from_slice(path.as_bytes());
            Some(path.len())
        }
    }

    fn prop(name: &'static str, value: &[u8]) -> (&'static str, Vec<u8>) {
        (name, value.to_vec())
    }

    /// 0x100 `/`, 0x101 `/cpus`, 0x102 `/cpus/PowerPC,POWER9@0`, 0x103 `/pci@800000020000000`,
    /// 0x104 `/pci@800000020000000/ethernet@1`, 0x105 `/vdevice` (VOF-style `phandle`).
    fn sample() -> FakeOfTree {
        let cpu =
            Spec("PowerPC,POWER9@0", vec![prop("name", b"PowerPC,POWER9\0"), prop("reg", &[0; 4])], vec![]);
        let cpus = Spec("cpus", vec![prop("name", b"cpus\0")], vec![cpu]);
        let mac = prop("local-mac-address", &[2, 0, 0, 0, 0, 1]);
        let ethernet = Spec("ethernet@1", vec![prop("name", b"ethernet\0"), mac], vec![]);
        let pci =
            Spec("pci@800000020000000", vec![prop("name", b"pci\0"), prop("ranges", &[])], vec![ethernet]);
        let vdevice =
            Spec("vdevice", vec![prop("phandle", &[0, 0, 0xab, 0xcd]), prop("name", b"vdevice\0")], vec![]);
        FakeOfTree::new(Spec("", vec![prop("model", b"IBM pSeries\0")], vec![cpus, pci, vdevice]))
    }

    /// All node names, depth first, separated by spaces.
    fn node_names(blob: &[u8]) -> String {
        let fdt = fdt::Fdt::new(blob).unwrap();
        let names: Vec<&str> = fdt.all_nodes().map(|n| n.name).collect();
        names.join(" ")
    }

    #[test]
    fn flattens_nested_tree_and_inserts_phandles() {
        let (blob, stats) = flatten(&mut sample(), &[], &FlattenLimits::default()).unwrap();
        let expected_names = "/ cpus PowerPC,POWER9@0 pci@800000020000000 ethernet@1 vdevice";
        assert_eq!(node_names(&blob), expected_names);
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let model = fdt.find_node("/").and_then(|n| n.property("model"));
        assert_eq!(model.and_then(|p| p.as_str()), Some("IBM pSeries"));
        let ethernet = fdt.find_node("/pci@800000020000000/ethernet@1").unwrap();
        assert_eq!(ethernet.property("local-mac-address").map(|p| p.value), Some(&[2, 0, 0, 0, 0, 1][..]));
        assert_eq!(fdt.find_node("/pci").and_then(|n| n.property("ranges")).map(|p| p.value), Some(&[][..]));
        assert_eq!(fdt.find_phandle(0x104).map(|n| n.name), Some("ethernet@1"));
        assert_eq!(fdt.find_phandle(0x100).map(|n| n.name), Some("/"));
        let vdevice = fdt.find_node("/vdevice").unwrap();
        assert_eq!(vdevice.properties().filter(|p| p.name == "phandle").count(), 1);
        assert_eq!(vdevice.property("phandle").and_then(|p| p.as_usize()), Some(0xabcd));
        let expected = FlattenStats { nodes: 6, properties: 10, bytes: blob.len(), skipped_properties: 0 };
        assert_eq!(stats, expected);
    }

    #[test]
    fn names_fall_back_to_name_property_then_phandle() {
        let mut tree = sample();
        tree.path_works = false;
        tree.node(0x104).unwrap().properties.retain(|(n, _)| *n != "name");
        let (blob, _) = flatten(&mut tree, &[], &FlattenLimits::default()).unwrap();
        let expected_names = "/ cpus PowerPC,POWER9 pci unknown@104 vdevice";
        assert_eq!(node_names(&blob), expected_names);
    }

    #[test]
    fn repeating_or_wrapping_nextprop_terminates() {
        let mut tree = sample();
        tree.next_prop = NextProp::Stuck;
        let (_, stats) = flatten(&mut tree, &[], &FlattenLimits::default()).unwrap();
        assert_eq!(stats.properties, 6); // Only each node's first property.
        tree.next_prop = NextProp::Wrapping;
        let limits = FlattenLimits { max_properties_per_node: 5, ..FlattenLimits::default() };
        let (blob, stats) = flatten(&mut tree, &[], &limits).unwrap();
        // One-property nodes stop at the repeat, the others at the limit: 1 + 1 + 4 * 5.
        assert_eq!(stats.properties, 22);
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let pci: Vec<&str> = fdt.find_node("/pci").unwrap().properties().map(|p| p.name).collect();
        assert_eq!(pci, ["name", "ranges", "name", "ranges", "name", "phandle"]);
    }

    #[test]
    fn peer_and_child_cycles_hit_limits() {
        let mut tree = sample();
        tree.node(0x105).unwrap().peer = Some(0x101); // vdevice -> cpus
        let error = flatten(&mut tree, &[], &FlattenLimits::default()).unwrap_err();
        assert_eq!(error, DtError::Malformed("more nodes than max_nodes (peer/child loop?)"));
        let mut tree = sample();
        tree.node(0x102).unwrap().child = Some(0x101); // cpu -> cpus
        let error = flatten(&mut tree, &[], &FlattenLimits::default()).unwrap_err();
        assert_eq!(error, DtError::Malformed("tree deeper than max_depth (child loop?)"));
    }

    #[test]
    fn oversized_and_unreadable_properties_are_skipped() {
        let mut tree = sample();
        let root = tree.node(0x100).unwrap();
        root.properties.extend([prop("big", &[7; 100]), prop("broken", b"unreadable")]);
        let limits = FlattenLimits { max_property_len: 64, ..FlattenLimits::default() };
        let (blob, stats) = flatten(&mut tree, &[], &limits).unwrap();
        assert_eq!((stats.properties, stats.skipped_properties), (10, 2));
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let root_properties: Vec<&str> = fdt.find_node("/").unwrap().properties().map(|p| p.name).collect();
        assert_eq!(root_properties, ["model", "phandle"]);
        let limits = FlattenLimits { max_total_bytes: 300, ..FlattenLimits::default() };
        assert_eq!(flatten(&mut tree, &[], &limits).unwrap_err(), TOO_BIG);
    }

    #[test]
    fn reservations_are_present_and_root_is_required() {
        let reservations = [(0x4000, 0x1000)];
        let (blob, _) = flatten(&mut sample(), &reservations, &FlattenLimits::default()).unwrap();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let found: Vec<(u64, u64)> =
            fdt.memory_reservations().map(|r| (r.address() as u64, r.size() as u64)).collect();
        assert_eq!(found, reservations);
        let mut empty = FakeOfTree::new(Spec("", vec![], vec![]));
        empty.nodes.clear();
        let error = flatten(&mut empty, &[], &FlattenLimits::default()).unwrap_err();
        assert_eq!(error, DtError::Malformed("firmware device tree has no root node"));
    }
}
