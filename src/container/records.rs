//! Names from each runtime's own records on disk: no API server, no
//! runtime socket, nothing that can hang.
//!
//! - containerd: the task bundle's OCI `config.json`, whose annotations the
//!   CRI plugin fills (`io.kubernetes.cri.*`);
//! - CRI-O: the container's `userdata/config.json` (`io.kubernetes.pod.*`,
//!   `io.kubernetes.container.name`);
//! - podman: containers/storage's `<driver>-containers/containers.json`
//!   (`names`; podman 4.3 writes its name there, not into the bundle);
//! - docker: `containers/<id>/config.v2.json` (`Name`, and the
//!   `io.kubernetes.*` labels dockershim set).
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::cgroup::Candidate;
use super::{Container, Runtime};

/// containerd's default state directory and the task directory under it.
const CONTAINERD_STATE: &str = "run/containerd";
const TASKS: &str = "io.containerd.runtime.v2.task";
/// containers/storage's default graph root and run root (podman, CRI-O).
const STORAGE_ROOT: &str = "var/lib/containers/storage";
const STORAGE_RUNROOT: &str = "run/containers/storage";
const STORAGE_DRIVERS: &[&str] = &["overlay", "vfs", "btrfs", "zfs"];
const DOCKER_CONTAINERS: &str = "var/lib/docker/containers";

/// A container as read, and whether it is a pod's sandbox ("pause"), which
/// only holds the namespaces: an application container in the same netns
/// is the better name for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub container: Container,
    pub sandbox: bool,
}

/// Where a container's records are when the runtime runs with
/// non-default directories, learnt from the container's parent: conmon's
/// `-b BUNDLE` argument (podman, CRI-O), or the containerd shim's working
/// directory, which is a bundle in containerd's state directory. Paths are
/// as the host sees them (joined under the resolver's root).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    pub bundle: Option<PathBuf>,
    pub containerd_state: Option<PathBuf>,
}

impl Hints {
    /// Hints from the parent's command line (NUL-separated) and working
    /// directory.
    pub fn from_parent(cmdline: &[u8], cwd: Option<&Path>) -> Hints {
        let args: Vec<&str> = cmdline
            .split(|&b| b == 0)
            .filter_map(|a| std::str::from_utf8(a).ok())
            .collect();
        let prog = args
            .first()
            .map_or("", |a| a.rsplit('/').next().unwrap_or(a));
        let mut h = Hints::default();
        if prog == "conmon" {
            h.bundle = args
                .windows(2)
                .find(|w| w[0] == "-b" || w[0] == "--bundle")
                .map(|w| PathBuf::from(w[1]));
        } else if prog.starts_with("containerd-shim") {
            // cwd = <state>/io.containerd.runtime.v2.task/<namespace>/<id>
            h.containerd_state = cwd
                .filter(|c| {
                    c.ancestors().nth(2).and_then(Path::file_name) == Some(OsStr::new(TASKS))
                })
                .and_then(|c| c.ancestors().nth(3))
                .map(Path::to_path_buf);
        }
        h
    }
}

/// Reads the records `cand` points to under `root`. None when the
/// candidate is only a guess that no record confirms (ctr's two-level
/// layout, a Kubernetes cgroup no runtime here knows).
pub fn read(root: &Path, cand: &Candidate, hints: &Hints) -> Option<Found> {
    match cand {
        Candidate::Docker(id) => {
            Some(docker(root, id).unwrap_or_else(|| bare(Runtime::Docker, id)))
        }
        Candidate::Containerd(id) => {
            Some(containerd(root, None, id, hints).unwrap_or_else(|| bare(Runtime::Containerd, id)))
        }
        Candidate::Crio(id) => {
            Some(crio(root, id, hints).unwrap_or_else(|| bare(Runtime::Crio, id)))
        }
        Candidate::Podman(id) => Some(podman(root, id, hints)),
        Candidate::Kube(id) => containerd(root, None, id, hints)
            .or_else(|| crio(root, id, hints))
            .or_else(|| docker(root, id)),
        Candidate::Plain { namespace, id } => containerd(root, Some(namespace), id, hints),
        Candidate::Nspawn(name) => Some(Found {
            container: Container {
                runtime: Runtime::Nspawn,
                id: name.clone(),
                name: Some(name.clone()),
                pod: None,
                namespace: None,
            },
            sandbox: false,
        }),
    }
}

/// The runtime is certain from the cgroup but its records are not there
/// (another state directory, a runtime that already forgot): the id alone.
fn bare(runtime: Runtime, id: &str) -> Found {
    Found {
        container: Container {
            runtime,
            id: id.to_string(),
            name: None,
            pod: None,
            namespace: None,
        },
        sandbox: false,
    }
}

/// `p` (a host path) under `root`.
fn under(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_slice(&fs::read(p).ok()?).ok()
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn containerd(root: &Path, ns: Option<&str>, id: &str, hints: &Hints) -> Option<Found> {
    let mut states = vec![root.join(CONTAINERD_STATE)];
    if let Some(s) = &hints.containerd_state {
        states.insert(0, under(root, s));
    }
    for state in states {
        let tasks = state.join(TASKS);
        let namespaces: Vec<String> = match ns {
            Some(n) => vec![n.to_string()],
            None => fs::read_dir(&tasks)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
        };
        for n in namespaces {
            let bundle = tasks.join(&n).join(id);
            if !bundle.is_dir() {
                continue;
            }
            let spec = read_json(&bundle.join("config.json")).unwrap_or(Value::Null);
            return Some(containerd_found(id, &spec));
        }
    }
    None
}

/// A containerd container from its OCI spec: the CRI plugin's annotations
/// when Kubernetes made it, the id alone when `ctr` or nerdctl did
/// (nerdctl's own name annotation is used when there).
pub fn containerd_found(id: &str, spec: &Value) -> Found {
    let a = &spec["annotations"];
    let sandbox = a["io.kubernetes.cri.container-type"].as_str() == Some("sandbox");
    let name = text(a, "io.kubernetes.cri.container-name").or_else(|| text(a, "nerdctl/name"));
    Found {
        container: Container {
            runtime: Runtime::Containerd,
            id: id.to_string(),
            name,
            pod: text(a, "io.kubernetes.cri.sandbox-name"),
            namespace: text(a, "io.kubernetes.cri.sandbox-namespace"),
        },
        sandbox,
    }
}

fn crio(root: &Path, id: &str, hints: &Hints) -> Option<Found> {
    let mut specs = Vec::new();
    if let Some(b) = hints
        .bundle
        .as_ref()
        .filter(|b| b.to_string_lossy().contains(id))
    {
        specs.push(under(root, b).join("config.json"));
    }
    for base in [STORAGE_RUNROOT, STORAGE_ROOT] {
        specs.push(
            root.join(base)
                .join("overlay-containers")
                .join(id)
                .join("userdata/config.json"),
        );
    }
    let spec = specs.iter().find_map(|p| read_json(p))?;
    let a = &spec["annotations"];
    // Only CRI-O (not podman) writes the pod annotations.
    a.get("io.kubernetes.pod.name")?;
    Some(crio_found(id, &spec))
}

/// A CRI-O container from its OCI spec's annotations.
pub fn crio_found(id: &str, spec: &Value) -> Found {
    let a = &spec["annotations"];
    let kind = a["io.kubernetes.cri-o.ContainerType"].as_str();
    let name = text(a, "io.kubernetes.container.name");
    Found {
        sandbox: kind == Some("sandbox") || name.as_deref() == Some("POD"),
        container: Container {
            runtime: Runtime::Crio,
            id: id.to_string(),
            name,
            pod: text(a, "io.kubernetes.pod.name"),
            namespace: text(a, "io.kubernetes.pod.namespace"),
        },
    }
}

/// podman: the name from containers/storage. The storage root is the
/// default, or the one conmon's bundle path lies in
/// (`<root>/<driver>-containers/<id>/userdata`), so `--root` elsewhere
/// needs no setting.
fn podman(root: &Path, id: &str, hints: &Hints) -> Found {
    let mut lists = Vec::new();
    if let Some(b) = &hints.bundle {
        if let Some(dir) = under(root, b).ancestors().nth(2) {
            lists.push(dir.join("containers.json"));
        }
    }
    for d in STORAGE_DRIVERS {
        lists.push(
            root.join(STORAGE_ROOT)
                .join(format!("{d}-containers/containers.json")),
        );
    }
    let name = lists
        .iter()
        .filter_map(|p| read_json(p))
        .find_map(|list| podman_name(&list, id));
    let mut f = bare(Runtime::Podman, id);
    f.container.name = name;
    f
}

/// The first name of container `id` in a containers.json list.
pub fn podman_name(list: &Value, id: &str) -> Option<String> {
    list.as_array()?
        .iter()
        .find(|c| c["id"].as_str() == Some(id))?["names"]
        .as_array()?
        .first()?
        .as_str()
        .map(str::to_string)
}

fn docker(root: &Path, id: &str) -> Option<Found> {
    let cfg = read_json(&root.join(DOCKER_CONTAINERS).join(id).join("config.v2.json"))?;
    Some(docker_found(id, &cfg))
}

/// A docker container from its config.v2.json; dockershim's labels give
/// the Kubernetes names.
pub fn docker_found(id: &str, cfg: &Value) -> Found {
    let l = &cfg["Config"]["Labels"];
    let kube_name = text(l, "io.kubernetes.container.name");
    let own = text(cfg, "Name").map(|n| n.trim_start_matches('/').to_string());
    Found {
        sandbox: l["io.kubernetes.docker.type"].as_str() == Some("podsandbox"),
        container: Container {
            runtime: Runtime::Docker,
            id: id.to_string(),
            name: kube_name.or(own),
            pod: text(l, "io.kubernetes.pod.name"),
            namespace: text(l, "io.kubernetes.pod.namespace"),
        },
    }
}
