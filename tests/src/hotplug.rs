//! QMP steps the DLPAR tests share.

use serde_json::json;

use crate::qemu::Session;

/// Hot-adds a scratch virtio-blk `id` holding `image` at `bus`/`addr` over QMP (`blockdev-add`,
/// then `device_add`, as QEMU's `docs/system/device-hotplug` shows); `false` if the image could
/// not be written or QEMU refused the device.
pub fn hot_add_disk(guest: &mut Session, id: &str, bus: &str, addr: &str, image: &[u8]) -> bool {
    let path = guest.dir().join(format!("{id}.img"));
    if let Err(e) = std::fs::write(&path, image) {
        guest.fail(format!("cannot write {}: {e}", path.display()));
        return false;
    }
    let node = format!("{id}-node");
    let file = json!({"driver": "file", "filename": path.display().to_string()});
    guest.execute("blockdev-add", json!({"driver": "raw", "node-name": node, "file": file}));
    let device = json!({"driver": "virtio-blk-pci", "drive": node, "bus": bus, "addr": addr, "id": id,
                        "disable-legacy": "on", "iommu_platform": true});
    guest.execute("device_add", device).is_some()
}

/// The guest's hot-plugged memory as QEMU holds it (`query-memory-devices`): `(address, size)`
/// of every DIMM.
pub fn dimms(guest: &mut Session) -> Vec<(u64, u64)> {
    let devices = guest.execute("query-memory-devices", json!({})).unwrap_or_default();
    devices
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|d| Some((d["data"]["addr"].as_u64()?, d["data"]["size"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Unplugs device `id` (`device_del`) and waits for QEMU's `DEVICE_DELETED` for it: the guest
/// has let it go.
pub fn unplug(guest: &mut Session, id: &str) {
    guest.execute("device_del", json!({"id": id}));
    guest.wait_event("DEVICE_DELETED", Some(id));
}
