//! Which container a process belongs to, read from its cgroup path alone.
//!
//! Every runtime names the cgroup of a container after its id, each in its
//! own way (docker `docker-<id>.scope`, containerd's CRI plugin
//! `cri-containerd-<id>.scope`, CRI-O `crio-<id>.scope`, podman
//! `libpod-<id>.scope`, the kubelet's cgroupfs driver
//! `/kubepods/<qos>/pod<uid>/<id>`, ctr `/<namespace>/<id>`, nspawn
//! `machine-<name>.scope`). The path says which runtime to ask; the
//! runtime's own records then give the names (`records`).

/// What a cgroup path says about a process, before any record is read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Candidate {
    Docker(String),
    /// containerd's CRI plugin (systemd driver names the scope after it).
    Containerd(String),
    Crio(String),
    Podman(String),
    /// A Kubernetes container under the cgroupfs driver: the path does not
    /// name the runtime, so containerd, CRI-O and docker are asked in turn.
    Kube(String),
    /// `ctr`'s default `/<namespace>/<id>`: only a container if containerd
    /// has a bundle of that id in that namespace (checked by the reader),
    /// since any two-level cgroup looks like this.
    Plain {
        namespace: String,
        id: String,
    },
    /// A systemd-nspawn machine, by its (unescaped) name.
    Nspawn(String),
}

/// The candidates of a `/proc/PID/cgroup` file, most specific first: each
/// line (v1 controllers and the v2 `0::` line; on hybrid hosts either may
/// be the one that is set) is read from its last component up, and the
/// first component that names a container wins for that line.
pub fn candidates(cgroup_file: &str) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for line in cgroup_file.lines() {
        let Some(path) = line.splitn(3, ':').nth(2) else {
            continue;
        };
        if let Some(c) = parse_path(path) {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    // A path that names its runtime beats the guesses.
    out.sort_by_key(|c| matches!(c, Candidate::Plain { .. } | Candidate::Kube(_)));
    out
}

/// The container one cgroup path names, if any.
pub fn parse_path(path: &str) -> Option<Candidate> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate().rev() {
        let parent = i.checked_sub(1).map(|j| parts[j]);
        if let Some(c) = scope_name(part) {
            return Some(c);
        }
        if is_id(part) {
            match parent {
                Some("docker") => return Some(Candidate::Docker(part.to_string())),
                Some(p) if p.starts_with("pod") && parts[..i].iter().any(|q| is_kubepods(q)) => {
                    return Some(Candidate::Kube(part.to_string()));
                }
                _ => {}
            }
        }
    }
    match parts.as_slice() {
        [ns, id] if !is_system_name(ns) && !is_system_name(id) => Some(Candidate::Plain {
            namespace: ns.to_string(),
            id: id.to_string(),
        }),
        _ => None,
    }
}

/// A component named after one container by its runtime.
fn scope_name(part: &str) -> Option<Candidate> {
    let base = part.strip_suffix(".scope").unwrap_or(part);
    let hex = |prefix: &str| base.strip_prefix(prefix).filter(|id| is_id(id));
    // Monitors (conmon) get scopes of their own: they are not the container.
    if base.starts_with("libpod-conmon-") || base.starts_with("crio-conmon-") {
        return None;
    }
    if let Some(id) = hex("docker-") {
        return Some(Candidate::Docker(id.into()));
    }
    if let Some(id) = hex("cri-containerd-") {
        return Some(Candidate::Containerd(id.into()));
    }
    if let Some(id) = hex("crio-") {
        return Some(Candidate::Crio(id.into()));
    }
    if let Some(id) = hex("libpod-") {
        return Some(Candidate::Podman(id.into()));
    }
    if part.ends_with(".scope") {
        if let Some(name) = base.strip_prefix("machine-") {
            return Some(Candidate::Nspawn(systemd_unescape(name)));
        }
    }
    None
}

/// Full container ids are 64 lowercase hex digits in every runtime here.
fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_kubepods(s: &str) -> bool {
    s == "kubepods" || s.starts_with("kubepods.") || s.starts_with("kubepods-")
}

/// Two-level paths systemd and the kubelet make that are not `ctr`'s.
fn is_system_name(s: &str) -> bool {
    s.ends_with(".slice") || s.ends_with(".scope") || s.ends_with(".service") || is_kubepods(s)
}

/// systemd unit-name escaping: `\x2d` is a `-` that belongs to the name
/// (a plain `-` in a unit name is a hierarchy separator).
pub fn systemd_unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' {
            if let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899";

    fn one(path: &str) -> Option<Candidate> {
        parse_path(path)
    }

    #[test]
    fn docker_layouts() {
        let want = Some(Candidate::Docker(ID.into()));
        assert_eq!(one(&format!("/docker/{ID}")), want);
        assert_eq!(one(&format!("/system.slice/docker-{ID}.scope")), want);
        // dockershim pods under the systemd driver
        assert_eq!(
            one(&format!(
                "/kubepods.slice/kubepods-pod1_2.slice/docker-{ID}.scope"
            )),
            want
        );
    }

    #[test]
    fn kubernetes_layouts() {
        assert_eq!(
            one(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12_ab.slice/cri-containerd-{ID}.scope"
            )),
            Some(Candidate::Containerd(ID.into()))
        );
        assert_eq!(
            one(&format!("/kubepods/besteffort/pod0b1c-22/{ID}")),
            Some(Candidate::Kube(ID.into()))
        );
        assert_eq!(
            one(&format!("/kubepods/pod0b1c-22/{ID}")),
            Some(Candidate::Kube(ID.into()))
        );
        assert_eq!(
            one(&format!(
                "/kubepods.slice/kubepods-pod1.slice/crio-{ID}.scope"
            )),
            Some(Candidate::Crio(ID.into()))
        );
        assert_eq!(
            one(&format!("/kubepods/burstable/pod1/crio-{ID}")),
            Some(Candidate::Crio(ID.into()))
        );
        // CRI-O's monitor is not the container.
        assert_eq!(
            one(&format!("/kubepods.slice/crio-conmon-{ID}.scope")),
            None
        );
    }

    #[test]
    fn podman_layouts() {
        let want = Some(Candidate::Podman(ID.into()));
        assert_eq!(one(&format!("/libpod_parent/libpod-{ID}")), want);
        assert_eq!(one(&format!("/machine.slice/libpod-{ID}.scope")), want);
        assert_eq!(
            one(&format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container")),
            want
        );
        assert_eq!(
            one(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            None
        );
    }

    #[test]
    fn nspawn_names_are_unescaped() {
        assert_eq!(
            one(r"/machine.slice/machine-web\x2dfront.scope/payload"),
            Some(Candidate::Nspawn("web-front".into()))
        );
        assert_eq!(systemd_unescape(r"a\x2db\x5c"), "a-b\\");
        assert_eq!(systemd_unescape(r"bad\x2"), r"bad\x2");
    }

    #[test]
    fn plain_containerd_is_only_a_guess() {
        assert_eq!(
            one("/default/web1"),
            Some(Candidate::Plain {
                namespace: "default".into(),
                id: "web1".into()
            })
        );
        for host in [
            "/",
            "/init.scope",
            "/system.slice/ssh.service",
            "/user.slice/user-0.slice",
            "/a/b/c",
        ] {
            assert_eq!(one(host), None, "{host}");
        }
    }

    /// Hybrid hosts: the v2 line is `/` and a v1 line has the path; the
    /// named runtime wins over the two-level guess of another line.
    #[test]
    fn every_line_is_read() {
        let file = format!(
            "12:memory:/process_api/abc\n9:name=systemd:/libpod_parent/libpod-{ID}\n0::/\n"
        );
        assert_eq!(
            candidates(&file),
            vec![
                Candidate::Podman(ID.into()),
                Candidate::Plain {
                    namespace: "process_api".into(),
                    id: "abc".into()
                }
            ]
        );
        assert!(candidates("0::/\n1:cpu:/\n").is_empty());
        assert!(candidates("garbage").is_empty());
    }
}
