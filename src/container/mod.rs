//! What runs in a network namespace: the container (and Kubernetes pod)
//! a drop happened in, so an on-call engineer reads `pod=shop/web-7d4b9
//! container=nginx` instead of a namespace inode.
//!
//! The chain is netns → a process in it (`/proc/*/ns/net`) → its cgroup
//! (`cgroup`: the layouts of docker, containerd, CRI-O, podman and
//! systemd-nspawn, cgroup v1 and v2) → the runtime's own records on disk
//! (`records`). No Kubernetes API and no runtime socket: a node without a
//! runtime simply has no containers. [`Resolver`] caches the answer per
//! netns so a drop never costs a /proc walk.
//!
//! Runtimes started with directories of their own (podman `--root`, a
//! second containerd with its own `state`) need no setting: the records
//! are found from the container's parent process, conmon's `-b BUNDLE`
//! argument or the containerd shim's working directory (its bundle). In a
//! DaemonSet, `NETWHY_HOST_ROOT` names where the host's root is mounted;
//! with hostPID its `/proc` is the host's.
//!
//! Several containers in one netns (a pod): an application container is
//! shown rather than the sandbox, and of those the one whose process has the
//! lowest pid, a stable choice; `--container` matches any of them.
#![forbid(unsafe_code)]
pub mod cgroup;
pub mod records;
pub(crate) mod resolver;

use std::sync::Arc;

use serde::Serialize;

pub use resolver::Resolver;

/// The runtime that made a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Docker,
    Containerd,
    Crio,
    Podman,
    Nspawn,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::Crio => "crio",
            Runtime::Podman => "podman",
            Runtime::Nspawn => "nspawn",
        }
    }
}

/// One container, as its runtime's records name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Container {
    pub runtime: Runtime,
    /// Full id as the runtime knows it (64 hex digits for most; the machine
    /// name for nspawn, any string for `ctr`).
    pub id: String,
    /// The container's name: the Kubernetes container name, the docker or
    /// podman name, the machine name.
    pub name: Option<String>,
    /// Kubernetes pod name.
    pub pod: Option<String>,
    /// Kubernetes namespace of the pod.
    pub namespace: Option<String>,
}

impl Container {
    /// `pod=ns/name container=c` for a Kubernetes container, else
    /// `container=name` (the first 12 characters of the id when the
    /// runtime has no name for it, as `docker ps` shows ids).
    pub fn label(&self) -> String {
        let name = self.display_name();
        match (&self.pod, &self.namespace) {
            (Some(p), Some(ns)) => format!("pod={ns}/{p} container={name}"),
            (Some(p), None) => format!("pod={p} container={name}"),
            _ => format!("container={name}"),
        }
    }

    fn display_name(&self) -> &str {
        match &self.name {
            Some(n) => n,
            None => self.id.get(..12).unwrap_or(&self.id),
        }
    }

    /// Whether `--pod SPEC` names this container's pod: `ns/name`, or a
    /// bare `name` in any namespace.
    pub fn matches_pod(&self, spec: &str) -> bool {
        let Some(pod) = &self.pod else { return false };
        match spec.split_once('/') {
            Some((ns, name)) => self.namespace.as_deref() == Some(ns) && pod == name,
            None => pod == spec,
        }
    }

    /// Whether `--container SPEC` names this container: its name, its full
    /// id, or an id prefix of 12 or more characters (what `ps` shows).
    pub fn matches_container(&self, spec: &str) -> bool {
        self.name.as_deref() == Some(spec)
            || self.id == spec
            || (spec.len() >= 12 && self.id.starts_with(spec))
    }
}

/// serde's `Arc` support needs its `rc` feature; an optional container is
/// written as the plain object it points to instead (`serialize_with`).
pub fn serialize_container<S: serde::Serializer>(
    c: &Option<Arc<Container>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    c.as_deref().serialize(s)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContainerError {
    #[error("no running container matches {wanted}; {seen}")]
    NoMatch { wanted: String, seen: String },
    #[error("cannot read {path}: {detail} (run as root; in a container mount the host's /proc and set NETWHY_HOST_ROOT)")]
    Proc { path: String, detail: String },
}

#[cfg(test)]
mod tests;
