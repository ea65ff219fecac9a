#!/usr/bin/env python3
"""Offline checks of deploy/kubernetes that a schema cannot make.

kubernetes-validate checks each built-in object against the API schema,
but it has no schema for the ServiceMonitor custom resource and it does
not look across objects: a Service whose selector misses the DaemonSet's
pods, or a ServiceMonitor naming a port the Service does not have, is
valid YAML that scrapes nothing. This script checks the ServiceMonitor
against deploy/schemas/servicemonitor.schema.json and the references
between the objects. Usage: check.py [DIR]; prints one line per problem
and exits 1 if there is any.
"""
import json
import os
import sys

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def load(dirname):
    """Every object of every manifest named by the kustomization."""
    with open(os.path.join(dirname, "kustomization.yaml")) as f:
        kust = yaml.safe_load(f)
    listed = kust.get("resources", [])
    present = sorted(
        n for n in os.listdir(dirname)
        if n.endswith((".yaml", ".yml")) and n != "kustomization.yaml"
    )
    errors = []
    for name in sorted(set(present) - set(listed)):
        errors.append(f"{name}: not listed in kustomization.yaml resources")
    for name in sorted(set(listed) - set(present)):
        errors.append(f"kustomization.yaml: lists missing file {name}")
    objs = []
    for name in listed:
        path = os.path.join(dirname, name)
        if os.path.exists(path):
            with open(path) as f:
                objs += [(name, o) for o in yaml.safe_load_all(f) if o]
    return objs, errors


def one(objs, kind):
    found = [o for _, o in objs if o.get("kind") == kind]
    if len(found) != 1:
        raise SystemExit(f"expected one {kind}, found {len(found)}")
    return found[0]


def subset(small, big):
    return all(big.get(k) == v for k, v in (small or {}).items())


def check(objs):
    errors = []
    with open(os.path.join(HERE, "schemas", "servicemonitor.schema.json")) as f:
        schema = json.load(f)
    for name, o in objs:
        if o.get("kind") == "ServiceMonitor":
            v = jsonschema.Draft202012Validator(schema)
            for e in v.iter_errors(o):
                where = "/".join(str(p) for p in e.absolute_path)
                errors.append(f"{name}: {where}: {e.message}")

    ns = one(objs, "Namespace")["metadata"]["name"]
    for name, o in objs:
        if o["kind"] != "Namespace" and o["metadata"].get("namespace") != ns:
            errors.append(f"{name}: {o['kind']} is not in namespace {ns}")

    ds, svc, sm = (one(objs, k) for k in ("DaemonSet", "Service", "ServiceMonitor"))
    pod = ds["spec"]["template"]
    labels = pod["metadata"].get("labels", {})
    if not subset(ds["spec"]["selector"].get("matchLabels"), labels):
        errors.append("DaemonSet: selector does not match its pod template")
    if not subset(svc["spec"].get("selector"), labels) or not svc["spec"].get("selector"):
        errors.append("Service: selector does not select the DaemonSet's pods")
    if not subset(sm["spec"]["selector"].get("matchLabels"), svc["metadata"].get("labels", {})):
        errors.append("ServiceMonitor: selector does not select the Service")
    names = sm["spec"].get("namespaceSelector", {}).get("matchNames", [])
    if not sm["spec"].get("namespaceSelector", {}).get("any") and svc["metadata"]["namespace"] not in names:
        errors.append("ServiceMonitor: namespaceSelector misses the Service's namespace")
    svc_ports = {p.get("name"): p for p in svc["spec"]["ports"]}
    for ep in sm["spec"]["endpoints"]:
        if ep.get("port") not in svc_ports:
            errors.append(f"ServiceMonitor: endpoint port {ep.get('port')!r} is not a Service port")

    spec = pod["spec"]
    cports = {p.get("name") for c in spec["containers"] for p in c.get("ports", [])}
    for p in svc["spec"]["ports"]:
        if isinstance(p.get("targetPort"), str) and p["targetPort"] not in cports:
            errors.append(f"Service: targetPort {p['targetPort']!r} is no container port")
    volumes = {v["name"] for v in spec.get("volumes", [])}
    mounted = set()
    for c in spec["containers"]:
        for m in c.get("volumeMounts", []):
            mounted.add(m["name"])
            if m["name"] not in volumes:
                errors.append(f"DaemonSet: mount {m['name']!r} has no volume")
        errors += container_security(c)
    for v in sorted(volumes - mounted):
        errors.append(f"DaemonSet: volume {v!r} is never mounted")
    return errors


def container_security(c):
    """What the API server would refuse, and what deploy/ promises."""
    errors = []
    sc = c.get("securityContext", {})
    caps = sc.get("capabilities", {})
    add = set(caps.get("add", []))
    if caps.get("drop") != ["ALL"]:
        errors.append(f"container {c['name']}: capabilities must drop ALL")
    if sc.get("privileged") is not False:
        errors.append(f"container {c['name']}: privileged must be false")
    if sc.get("readOnlyRootFilesystem") is not True:
        errors.append(f"container {c['name']}: root filesystem must be read-only")
    if sc.get("allowPrivilegeEscalation") is False and "SYS_ADMIN" in add:
        errors.append(
            f"container {c['name']}: allowPrivilegeEscalation false with SYS_ADMIN is refused by the API server"
        )
    return errors


def main():
    dirname = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "kubernetes")
    objs, errors = load(dirname)
    try:
        errors += check(objs)
    except SystemExit as e:
        errors.append(str(e))
    for e in errors:
        print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
