//! Drop reasons a newer kernel gives where an older one frees the same
//! packet with NOT_SPECIFIED at the same function (6.12 has neither
//! BRIDGE_INGRESS_STP_STATE nor IP_LOCALNET: both came with the commits that
//! put them at br_handle_frame and ip_rcv_finish_core). The incident is
//! the same on both, so a scenario expects whichever the running kernel
//! names, and the diagnosis reads the same live evidence.
use std::sync::OnceLock;

use crate::kernel::reasons::DropReasons;

/// `name` when the running kernel has that drop reason, else NOT_SPECIFIED.
pub(super) fn reason_or_unspecified(name: &'static str) -> &'static str {
    static REASONS: OnceLock<Option<DropReasons>> = OnceLock::new();
    let known = REASONS
        .get_or_init(|| DropReasons::load().ok())
        .as_ref()
        // Unreadable reasons: assume a kernel as new as netwhy's own.
        .is_none_or(|r| r.value(name).is_some());
    if known {
        name
    } else {
        "NOT_SPECIFIED"
    }
}
