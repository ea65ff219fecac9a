#!/usr/bin/env python3
"""Every PromQL expression deploy/ ships, as JSON, ready to run.

Prints [{"where", "expr", "probe"[, "needs"]}] for each query of the
Grafana dashboard (panels and template variables) and each rule of the
Prometheus rules. `probe` is what a test can send to Prometheus's query
API to see that the expression returns data:

- Grafana's variables are replaced: $__rate_interval and $__interval by
  1m, $__range by 5m, label variables by the regex ".*" (the "All" value);
  a variable's label_values(SELECTOR, LABEL) becomes
  group by (LABEL) (SELECTOR).
- An alert's last top-level comparison with a number (`... > 1`) is cut
  off, so the probe returns the value the alert compares, firing or not.

`needs`, when present, names what must hold besides an exporter that
has seen drops: "absent" for absent(), which returns data only when the
exporter is NOT scraped; "doctor-finding" when the probe reads
netwhy_doctor_finding, which exists only while doctor has something to
say. Usage: promql.py [DEPLOY_DIR].
"""
import json
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
GRAFANA_TIME = {"__rate_interval": "1m", "__interval": "1m", "__range": "5m"}
COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
NUMBER = re.compile(r"^\s*(bool\s+)?[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*(\w+)\s*\)\s*$", re.S)


def grafana_substitute(expr):
    def one(m):
        name = m.group(1) or m.group(2)
        return GRAFANA_TIME.get(name, ".*")
    return VARIABLE.sub(one, expr)


def top_level_comparison(expr):
    """Index and operator of the last comparison outside (), {}, [] and
    strings, or None."""
    depth, quote, last, i = 0, None, None, 0
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
        elif c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        elif depth == 0 and c == "#":
            while i < len(expr) and expr[i] != "\n":
                i += 1
        elif depth == 0:
            for op in COMPARISONS:
                if expr.startswith(op, i) and not expr.startswith("=~", i):
                    last = (i, op)
                    i += len(op) - 1
                    break
        i += 1
    return last


def strip_threshold(expr):
    found = top_level_comparison(expr)
    if found and NUMBER.match(expr[found[0] + len(found[1]):]):
        return expr[: found[0]].strip()
    return expr.strip()


def needs(probe):
    if re.match(r"^\s*absent(_over_time)?\(", probe):
        return "absent"
    if "netwhy_doctor_finding" in probe:
        return "doctor-finding"
    return None


def entry(where, expr, probe):
    e = {"where": where, "expr": expr.strip(), "probe": probe}
    if needs(probe):
        e["needs"] = needs(probe)
    return e


def dashboard(path):
    with open(path) as f:
        dash = json.load(f)
    out = []
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = LABEL_VALUES.match(q)
        probe = f"group by ({m.group(2)}) ({m.group(1)})" if m else q
        out.append(entry(f"grafana: variable {var['name']}", q, grafana_substitute(probe)))
    for panel in dash.get("panels", []):
        for t in panel.get("targets", []):
            where = f"grafana: {panel['title']} ({t.get('refId', '?')})"
            out.append(entry(where, t["expr"], grafana_substitute(t["expr"])))
    return out


def rules(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    out = []
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                where = f"rules: alert {rule['alert']}"
                probe = strip_threshold(rule["expr"])
            else:
                where = f"rules: record {rule['record']}"
                probe = rule["expr"].strip()
            out.append(entry(where, rule["expr"], probe))
    return out


def main():
    base = sys.argv[1] if len(sys.argv) > 1 else HERE
    exprs = dashboard(os.path.join(base, "grafana", "netwhy-dashboard.json"))
    exprs += rules(os.path.join(base, "prometheus", "netwhy-rules.yml"))
    json.dump(exprs, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
