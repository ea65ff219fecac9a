//! The resolver on a fake host root: /proc entries and runtime records
//! written by the test, one per layout (tests/fixtures/containers/).
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::records::{self, Hints};
use super::*;

const CRI: &str = include_str!("../../tests/fixtures/containers/containerd-cri.json");
const SANDBOX: &str = include_str!("../../tests/fixtures/containers/containerd-sandbox.json");
const CRIO: &str = include_str!("../../tests/fixtures/containers/crio-config.json");
const PODMAN: &str = include_str!("../../tests/fixtures/containers/podman-containers.json");
const DOCKER_K8S: &str = include_str!("../../tests/fixtures/containers/docker-config.v2.json");
const DOCKER: &str = include_str!("../../tests/fixtures/containers/docker-plain.v2.json");

fn id(c: char) -> String {
    std::iter::repeat_n(c, 64).collect()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

/// A fake host root, removed on drop.
struct Root(PathBuf);

impl Root {
    fn new(tag: &str) -> Root {
        let p = std::env::temp_dir().join(format!("netwhy-ctr-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(p.join("proc")).unwrap();
        Root(p)
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// Process `pid` in netns `ns` with cgroup `cg`, child of `ppid`.
    fn process(&self, pid: u32, ppid: u32, ns: u32, cg: &str) {
        let d = self.0.join(format!("proc/{pid}"));
        fs::create_dir_all(d.join("ns")).unwrap();
        symlink(format!("net:[{ns}]"), d.join("ns/net")).unwrap();
        fs::write(d.join("cgroup"), cg).unwrap();
        fs::write(d.join("stat"), format!("{pid} (a b) S {ppid} 1 1 0")).unwrap();
        fs::write(d.join("cmdline"), "sleep\0").unwrap();
    }

    fn parent(&self, pid: u32, argv: &[&str], cwd: &str) {
        self.process(pid, 1, HOST, "0::/system.slice/x.service\n");
        let d = self.0.join(format!("proc/{pid}"));
        fs::write(d.join("cmdline"), argv.join("\0") + "\0").unwrap();
        symlink(cwd, d.join("cwd")).unwrap();
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const HOST: u32 = 4026531840;

#[test]
fn labels() {
    let mut c = records::containerd_found(&id('1'), &json(CRI)).container;
    assert_eq!(c.label(), "pod=shop/web-7d4b9 container=nginx");
    c.namespace = None;
    assert_eq!(c.label(), "pod=web-7d4b9 container=nginx");
    let bare = Container {
        runtime: Runtime::Containerd,
        id: id('a'),
        name: None,
        pod: None,
        namespace: None,
    };
    assert_eq!(bare.label(), "container=aaaaaaaaaaaa");
    let json = serde_json::to_string(&bare).unwrap();
    assert!(
        json.starts_with(r#"{"runtime":"containerd","id":"aaaa"#),
        "{json}"
    );
}

#[test]
fn containerd_cri_annotations() {
    let f = records::containerd_found(&id('1'), &json(CRI));
    assert!(!f.sandbox);
    assert_eq!(f.container.name.as_deref(), Some("nginx"));
    assert_eq!(f.container.pod.as_deref(), Some("web-7d4b9"));
    assert_eq!(f.container.namespace.as_deref(), Some("shop"));
    let s = records::containerd_found(&id('2'), &json(SANDBOX));
    assert!(s.sandbox);
    assert_eq!(s.container.name, None);
    // ctr: no annotations, the id is all there is.
    let plain = records::containerd_found("web1", &json("{}"));
    assert_eq!(plain.container.label(), "container=web1");
}

#[test]
fn crio_podman_docker_records() {
    let f = records::crio_found(&id('7'), &json(CRIO));
    assert_eq!(
        f.container.label(),
        "pod=payments/backend-5f6c container=api"
    );
    assert!(!f.sandbox);
    let list = json(PODMAN);
    assert_eq!(
        records::podman_name(&list, &id('3')).as_deref(),
        Some("db-main")
    );
    assert_eq!(
        records::podman_name(&list, &id('4')).as_deref(),
        Some("cache")
    );
    assert_eq!(records::podman_name(&list, &id('9')), None);
    let d = records::docker_found(&id('5'), &json(DOCKER_K8S));
    assert_eq!(d.container.label(), "pod=default/frontend-1 container=app");
    let d = records::docker_found(&id('6'), &json(DOCKER));
    assert_eq!(d.container.label(), "container=redis");
}

#[test]
fn parents_say_where_records_are() {
    let h = Hints::from_parent(
        b"/usr/bin/conmon\0--api-version\0v1\0-c\0abc\0-b\0/srv/st/vfs-containers/abc/userdata\0-n\0x\0",
        None,
    );
    assert_eq!(
        h.bundle,
        Some(PathBuf::from("/srv/st/vfs-containers/abc/userdata"))
    );
    let h = Hints::from_parent(
        b"/usr/bin/containerd-shim-runc-v2\0-namespace\0k8s.io\0-id\0abc\0",
        Some(Path::new(
            "/tmp/c/state/io.containerd.runtime.v2.task/k8s.io/abc",
        )),
    );
    assert_eq!(h.containerd_state, Some(PathBuf::from("/tmp/c/state")));
    let h = Hints::from_parent(b"/bin/bash\0", Some(Path::new("/root")));
    assert_eq!(h, Hints::default());
    assert_eq!(resolver::parent_pid("12 (a) b) c) S 7 12 12"), Some(7));
}

/// One host with every runtime: each netns gets its container, the pod's
/// application container wins over its sandbox whatever the pids, and
/// records in non-default places are found through the parent process.
#[test]
fn resolver_on_a_fake_host() {
    let r = Root::new("host");
    r.process(1, 0, HOST, "0::/init.scope\n");
    r.process(50, 1, HOST, "0::/system.slice/ssh.service\n");
    // A Kubernetes pod under containerd's systemd layout: sandbox first.
    let task = "run/containerd/io.containerd.runtime.v2.task/k8s.io";
    r.write(&format!("{task}/{}/config.json", id('2')), SANDBOX);
    r.write(&format!("{task}/{}/config.json", id('1')), CRI);
    let slice = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0b1c.slice";
    r.process(
        100,
        1,
        11,
        &format!("0::{slice}/cri-containerd-{}.scope\n", id('2')),
    );
    r.process(
        101,
        1,
        11,
        &format!("0::{slice}/cri-containerd-{}.scope\n", id('1')),
    );
    // A ctr container in its own state dir, found through the shim's cwd;
    // cgroupfs kubepods layout (v1 lines, the v2 line is the root).
    let state = r.0.join("tmp/ctd/state");
    let bundle = format!(
        "/tmp/ctd/state/io.containerd.runtime.v2.task/default/{}",
        id('8')
    );
    r.write(&format!("{}/config.json", &bundle[1..]), CRI);
    let _ = state;
    r.parent(
        200,
        &["/usr/bin/containerd-shim-runc-v2", "-namespace", "default"],
        &bundle,
    );
    r.process(
        201,
        200,
        12,
        &format!("4:memory:/kubepods/besteffort/pod0b1c/{}\n0::/\n", id('8')),
    );
    // podman with --root elsewhere: conmon's -b says where.
    let pbundle = format!("/tmp/p/root/vfs-containers/{}/userdata", id('3'));
    r.write("tmp/p/root/vfs-containers/containers.json", PODMAN);
    r.parent(
        300,
        &["/usr/bin/conmon", "-c", &id('3'), "-b", &pbundle],
        "/",
    );
    r.process(
        301,
        300,
        13,
        &format!("0::/libpod_parent/libpod-{}\n", id('3')),
    );
    // docker, nspawn, a CRI-O pod.
    r.write(
        &format!("var/lib/docker/containers/{}/config.v2.json", id('6')),
        DOCKER,
    );
    r.process(
        400,
        1,
        14,
        &format!("0::/system.slice/docker-{}.scope\n", id('6')),
    );
    r.process(
        500,
        1,
        15,
        "0::/machine.slice/machine-web\\x2d1.scope/payload\n",
    );
    r.write(
        &format!(
            "run/containers/storage/overlay-containers/{}/userdata/config.json",
            id('7')
        ),
        CRIO,
    );
    r.process(
        600,
        1,
        16,
        &format!("0::/kubepods/burstable/pod77aa/crio-{}\n", id('7')),
    );
    // A netns with a process in no container, and a two-level cgroup that
    // is not ctr's (no bundle).
    r.process(700, 1, 17, "0::/process_api/abc\n");

    let mut res = Resolver::with_root(&r.0);
    let label = |res: &mut Resolver, ns| res.lookup(ns).map(|c| c.label());
    assert_eq!(
        label(&mut res, 11).as_deref(),
        Some("pod=shop/web-7d4b9 container=nginx")
    );
    assert_eq!(
        label(&mut res, 12).as_deref(),
        Some("pod=shop/web-7d4b9 container=nginx")
    );
    assert_eq!(res.lookup(12).unwrap().id, id('8'));
    assert_eq!(label(&mut res, 13).as_deref(), Some("container=db-main"));
    assert_eq!(res.lookup(13).unwrap().runtime, Runtime::Podman);
    assert_eq!(label(&mut res, 14).as_deref(), Some("container=redis"));
    let n = res.lookup(15).unwrap();
    assert_eq!(
        (n.runtime, n.label().as_str()),
        (Runtime::Nspawn, "container=web-1")
    );
    assert_eq!(
        label(&mut res, 16).as_deref(),
        Some("pod=payments/backend-5f6c container=api")
    );
    assert_eq!(res.lookup(17), None);
    assert_eq!(res.lookup(HOST), None);
    assert_eq!(res.lookup(0), None);

    // Filters resolve to namespaces; both must hold for one container.
    assert_eq!(
        res.netns_of(Some("shop/web-7d4b9"), None).unwrap(),
        vec![11, 12]
    );
    assert_eq!(res.netns_of(Some("backend-5f6c"), None).unwrap(), vec![16]);
    assert_eq!(res.netns_of(None, Some("db-main")).unwrap(), vec![13]);
    assert_eq!(res.netns_of(None, Some(&id('6')[..12])).unwrap(), vec![14]);
    assert_eq!(
        res.netns_of(Some("shop/web-7d4b9"), Some("nginx")).unwrap(),
        vec![11, 12]
    );
    assert_eq!(res.netns_of(None, None).unwrap(), Vec::<u32>::new());
    let e = res
        .netns_of(Some("other/web-7d4b9"), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("no running container matches --pod other/web-7d4b9; running: "),
        "{e}"
    );
    assert!(
        e.contains("container=db-main (podman)") && !e.contains('\n'),
        "{e}"
    );
    let e = res
        .netns_of(Some("payments/backend-5f6c"), Some("nginx"))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("--pod payments/backend-5f6c --container nginx"),
        "{e}"
    );

    // A namespace that appears later is found on the next miss (after
    // the one-second rate limit).
    r.process(800, 1, 18, &format!("0::/docker/{}\n", id('6')));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(label(&mut res, 18).as_deref(), Some("container=redis"));
    // A netns without processes is looked for once, then remembered.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(res.lookup(19), None);
    r.process(900, 1, 19, &format!("0::/docker/{}\n", id('6')));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(res.lookup(19), None, "rescanned on a remembered miss");
    // A gone namespace is forgotten at the next scan.
    fs::remove_dir_all(r.0.join("proc/500")).unwrap();
    assert!(res.netns_of(None, Some("web-1")).is_err());
    assert_eq!(res.lookup(15), None);
}

#[test]
fn an_empty_host_says_how_to_look() {
    let r = Root::new("empty");
    r.process(1, 0, HOST, "0::/\n");
    let mut res = Resolver::with_root(&r.0);
    let e = res.netns_of(None, Some("web")).unwrap_err().to_string();
    assert!(
        e.contains("--container web; no container runs here (`podman ps`"),
        "{e}"
    );
    let gone = Resolver::with_root(&r.0.join("nowhere")).netns_of(Some("a/b"), None);
    assert!(matches!(gone, Err(ContainerError::Proc { .. })), "{gone:?}");
}
