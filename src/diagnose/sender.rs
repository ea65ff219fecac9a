//! "What sent it": the interface that put a dropped frame on the wire,
//! found by the frame's source MAC in every namespace netwhy can enter.
//! The IP source alone is ambiguous (NAT, routers, the same lab addresses
//! in many namespaces); the MAC names one interface, or the last router.
use super::clues::{Clues, Subject};
use crate::event::DropEvent;
use crate::state::link::{self, MacOwner};

/// Adds a line (and a [`Subject::Sender`]) naming who sent `e`'s frame;
/// returns that interface when one was found on this host.
pub(super) fn describe(e: &DropEvent, c: &mut Clues) -> Option<MacOwner> {
    let src = e
        .flow
        .src
        .map(|s| match e.flow.sport {
            Some(p) => std::net::SocketAddr::new(s, p).to_string(),
            None => s.to_string(),
        })
        .unwrap_or_else(|| "?".into());
    let Some(mac) = e.flow.eth_src else {
        c.line(format!(
            "sender: {src} (the frame's link-layer header was not captured, so the interface \
             that sent it is unknown)"
        ));
        return None;
    };
    let m = link::mac_string(&mac);
    // The receiving interface itself (a frame looped back) is not a sender.
    let owner = find_mac(mac)
        .into_iter()
        .find(|o| !(o.netns == e.netns && Some(o.dev.as_str()) == e.dev.as_deref()));
    let Some(o) = owner else {
        c.line(format!(
            "sender: {src} from MAC {m}, an interface in no namespace of this host (a VM, a \
             container runtime netwhy cannot enter, or a machine on the wire)"
        ));
        return None;
    };
    let owns_src = e.flow.src.is_some_and(|s| o.addrs.contains(&s));
    c.line(if owns_src {
        format!(
            "sender: {src}, sent by {} in netns {} (MAC {m}), which holds that address",
            o.dev, o.netns_name
        )
    } else {
        format!(
            "sender: {src}; the frame came from {} in netns {} (MAC {m}), which does not hold \
             that address: it forwarded (or spoofed) the packet",
            o.dev, o.netns_name
        )
    });
    c.subjects.push(Subject::Sender {
        netns: o.netns_name.clone(),
        dev: o.dev.clone(),
        mac: m,
    });
    Some(o)
}

/// The interfaces whose MAC is `mac`, over every namespace netwhy can name.
fn find_mac(mac: [u8; 6]) -> Vec<MacOwner> {
    let names = crate::kernel::netns::NetnsNames::scan();
    let mut out = Vec::new();
    for (ino, name) in names.iter() {
        let Ok(found) = link::with_mac(ino, mac) else {
            continue;
        };
        out.extend(found.into_iter().map(|(dev, addrs)| MacOwner {
            netns: ino,
            netns_name: name.to_string(),
            dev,
            addrs,
        }));
    }
    out.sort_by(|a, b| (&a.netns_name, &a.dev).cmp(&(&b.netns_name, &b.dev)));
    out
}
