#!/usr/bin/python3
"""Assertions on Legate's rendered manifests, the chart's values and the docs.

Used by test/helm/check.sh; prints one line per check, `PASS name` or
`FAIL name: reason`, and exits 1 if any check failed.

  check_rendered.py render RENDERED.yaml CHART_DIR [VALUES.yaml]
      The objects helm rendered from the chart's values.yaml overlaid with
      VALUES.yaml: least-privilege RBAC, scope, command lines, security
      context, probes, the shared socket volume, Services, HPA and PDB all
      follow the values.
  check_rendered.py tojson OUT.json FILE.yaml...
      Every object of the files, as input for validator/validate.mjs.
  check_rendered.py binflags RENDERED.yaml BUILD_DIR
      The flags in the Deployment's args are all in the --help of the
      binaries built in BUILD_DIR.
  check_rendered.py docs CHART_DIR DOCS.md
      Every value in values.yaml has a `# --` comment and a row in the
      values table of DOCS.md.
"""
import json
import os
import re
import sys

import yaml

RELEASE_NAMESPACE = "legate"
SOCKET_DIR = "/var/run/legate"

# The binaries' flags (fixed by their command-line interfaces); every flag
# takes one value.
PROXY_FLAGS = {"--listen", "--admin", "--control-socket", "--workers", "--log-level", "--log-format"}
CONTROLLER_FLAGS = {
    "--control-socket", "--source-dir", "--kubeconfig", "--namespace",
    "--serviceaccount-dir", "--ambassador-id", "--log-level", "--log-format",
}
COMMANDS = {"controller": "/usr/local/bin/legate-controller", "proxy": "/usr/local/bin/legate-proxy"}
LOG_LEVELS = {"debug", "info", "warn", "error"}
LOG_FORMATS = {"logfmt", "json"}

# Exactly these rules, nothing more: (apiGroup, resource) -> verbs.
RBAC_RULES = {("", "services"): {"get", "list", "watch"}, ("", "events"): {"create", "patch"}}

results = []


def check(name, cond, reason):
    results.append((name, bool(cond), reason))
    return bool(cond)


def finish():
    failed = 0
    for name, ok, reason in results:
        if ok:
            print(f"PASS {name}")
        else:
            failed += 1
            print(f"FAIL {name}: {reason}")
    sys.exit(1 if failed else 0)


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def merge(base, over):
    """Helm's values overlay: maps merge recursively, everything else replaces."""
    out = dict(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_args(args, allowed):
    """Returns ({flag: value}, error or None) for a `--flag value` list."""
    flags = {}
    i = 0
    while i < len(args):
        a = str(args[i])
        flag, eq, val = a.partition("=")
        if flag not in allowed:
            return flags, f"unknown flag {a!r}"
        if not eq:
            if i + 1 >= len(args):
                return flags, f"{flag} has no value"
            val = str(args[i + 1])
            i += 1
        if flag in flags and flags[flag] != val:
            return flags, f"{flag} given twice with different values"
        flags[flag] = val
        i += 1
    return flags, None


def by_kind(objs, kind):
    return [o for o in objs if o.get("kind") == kind]


def render_checks(rendered, chart_dir, values_file):
    with open(os.path.join(chart_dir, "values.yaml")) as f:
        values = yaml.safe_load(f)
    if values_file:
        with open(values_file) as f:
            values = merge(values, yaml.safe_load(f))
    objs = load_all(rendered)
    single = values["scope"]["singleNamespace"]
    watch_ns = values["scope"]["namespace"] or RELEASE_NAMESPACE

    # --- the Deployment and its pod -------------------------------------
    deps = by_kind(objs, "Deployment")
    if not check("one Deployment", len(deps) == 1, f"found {len(deps)}"):
        return
    dep = deps[0]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"].get("labels", {})
    containers = {c["name"]: c for c in pod.get("containers", [])}
    check("containers are controller and proxy", sorted(containers) == ["controller", "proxy"],
          f"containers: {sorted(containers)}")
    sel = spec["selector"]["matchLabels"]
    check("selector matches the pod labels", all(pod_labels.get(k) == v for k, v in sel.items()),
          f"selector {sel} vs labels {pod_labels}")

    # Command lines: only the binaries' own flags, each with a value.
    parsed = {}
    for cname, allowed in (("controller", CONTROLLER_FLAGS), ("proxy", PROXY_FLAGS)):
        c = containers.get(cname)
        if c is None:
            continue
        check(f"{cname} command", c.get("command") == [COMMANDS[cname]],
              f"command is {c.get('command')}, expected [{COMMANDS[cname]}]")
        flags, err = parse_args(c.get("args", []), allowed)
        parsed[cname] = flags
        check(f"{cname} args use only its flags", err is None, err)
        check(f"{cname} --log-level", flags.get("--log-level") == values["logLevel"] in LOG_LEVELS,
              f"--log-level {flags.get('--log-level')!r}, values say {values['logLevel']!r}")
        check(f"{cname} --log-format", flags.get("--log-format") == values["logFormat"] in LOG_FORMATS,
              f"--log-format {flags.get('--log-format')!r}, values say {values['logFormat']!r}")
    p = parsed.get("proxy", {})
    ctl = parsed.get("controller", {})
    check("proxy --listen 0.0.0.0:8080", p.get("--listen") == "0.0.0.0:8080", f"--listen {p.get('--listen')!r}")
    check("proxy --admin 0.0.0.0:8877 (kubelet probes come from the node)",
          p.get("--admin") == "0.0.0.0:8877", f"--admin {p.get('--admin')!r}")
    sock = p.get("--control-socket")
    check("both containers use one control socket in the shared volume",
          sock is not None and sock == ctl.get("--control-socket") and sock.startswith(SOCKET_DIR + "/"),
          f"proxy {sock!r}, controller {ctl.get('--control-socket')!r}")
    workers = values["workers"]
    if workers in ("", None):
        check("--workers omitted when workers is empty", "--workers" not in p, f"--workers {p.get('--workers')!r}")
    else:
        check("--workers follows the values", p.get("--workers") == str(workers),
              f"--workers {p.get('--workers')!r}, values say {workers!r}")
    check("controller --ambassador-id", ctl.get("--ambassador-id") == str(values["ambassadorId"]),
          f"--ambassador-id {ctl.get('--ambassador-id')!r}, values say {values['ambassadorId']!r}")
    if single:
        check("singleNamespace gives the controller --namespace", ctl.get("--namespace") == watch_ns,
              f"--namespace {ctl.get('--namespace')!r}, expected {watch_ns!r}")
    else:
        check("cluster scope gives no --namespace", "--namespace" not in ctl, f"--namespace {ctl.get('--namespace')!r}")
    env = {e["name"]: e for e in containers.get("controller", {}).get("env", [])}
    check("controller gets POD_NAMESPACE from the downward API",
          env.get("POD_NAMESPACE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace",
          f"POD_NAMESPACE is {env.get('POD_NAMESPACE')}")

    # Shared emptyDir for the socket.
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    ok = True
    for c in containers.values():
        mounts = [m for m in c.get("volumeMounts", []) if m.get("mountPath") == SOCKET_DIR]
        ok = ok and len(mounts) == 1 and "emptyDir" in vols.get(mounts[0]["name"], {})
    check(f"both containers mount one emptyDir at {SOCKET_DIR}", ok and len(containers) == 2,
          "a container lacks the emptyDir mount")

    # Security context.
    psc = pod.get("securityContext", {})
    check("pod securityContext",
          psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532 and "fsGroup" in psc
          and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
          f"pod securityContext is {psc}")
    for cname, c in containers.items():
        sc = c.get("securityContext", {})
        caps = sc.get("capabilities", {})
        check(f"{cname} securityContext",
              sc.get("allowPrivilegeEscalation") is False and sc.get("readOnlyRootFilesystem") is True
              and "ALL" in caps.get("drop", []) and not caps.get("add") and not sc.get("privileged"),
              f"{cname} securityContext is {sc}")

    # Probes on the admin port.
    proxy = containers.get("proxy", {})
    ports = {pt["name"]: pt["containerPort"] for pt in proxy.get("ports", [])}
    check("proxy ports http 8080 and admin 8877", ports.get("http") == 8080 and ports.get("admin") == 8877,
          f"ports {ports}")
    for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/live")):
        hg = proxy.get(probe, {}).get("httpGet", {})
        port = ports.get(hg.get("port"), hg.get("port"))
        check(f"proxy {probe} GET {path} on 8877", hg.get("path") == path and port == 8877,
              f"{probe} is {proxy.get(probe)}")

    # Replicas and autoscaling.
    hpas = by_kind(objs, "HorizontalPodAutoscaler")
    if values["autoscaling"]["enabled"]:
        check("autoscaling: Deployment has no replicas", "replicas" not in spec, f"replicas: {spec.get('replicas')}")
        check("autoscaling: one HPA on the Deployment",
              len(hpas) == 1 and hpas[0]["apiVersion"] == "autoscaling/v2"
              and hpas[0]["spec"]["scaleTargetRef"].get("name") == dep["metadata"]["name"]
              and hpas[0]["spec"]["scaleTargetRef"].get("kind") == "Deployment",
              f"HPAs: {[h['spec'].get('scaleTargetRef') for h in hpas]}")
    else:
        check("replicas follow replicaCount", spec.get("replicas") == values["replicaCount"],
              f"replicas {spec.get('replicas')}")
        check("no HPA unless autoscaling.enabled", not hpas, f"{len(hpas)} HPA rendered")
    pdbs = by_kind(objs, "PodDisruptionBudget")
    if values["podDisruptionBudget"]["enabled"]:
        ok = len(pdbs) == 1
        if ok:
            ps = pdbs[0]["spec"]
            ok = all(pod_labels.get(k) == v for k, v in ps["selector"]["matchLabels"].items()) \
                and (("minAvailable" in ps) != ("maxUnavailable" in ps))
        check("PDB selects the pods, with one of minAvailable/maxUnavailable", ok, f"PDBs: {[x.get('spec') for x in pdbs]}")
    else:
        check("no PDB unless podDisruptionBudget.enabled", not pdbs, f"{len(pdbs)} PDB rendered")

    # --- Services ----------------------------------------------------------
    fullname = dep["metadata"]["name"]
    svcs = {s["metadata"]["name"]: s for s in by_kind(objs, "Service")}
    svc = svcs.get(fullname)
    if check("traffic Service exists", svc is not None, f"no Service {fullname}; got {sorted(svcs)}"):
        sp = {pt["name"]: pt for pt in svc["spec"]["ports"]}
        check("Service type follows the values", svc["spec"].get("type") == values["service"]["type"],
              f"type {svc['spec'].get('type')}")
        check("Service selects the pods", all(pod_labels.get(k) == v for k, v in svc["spec"]["selector"].items()),
              f"selector {svc['spec']['selector']}")
        h = sp.get("http", {})
        check("Service http port -> 8080", h.get("port") == values["service"]["port"]
              and ports.get(h.get("targetPort"), h.get("targetPort")) == 8080, f"http port {h}")
        if values["service"]["https"]["enabled"]:
            s = sp.get("https", {})
            check("Service https 443 -> 8443 when enabled", s.get("port") == values["service"]["https"]["port"]
                  and s.get("targetPort") == values["service"]["https"]["targetPort"], f"https port {s}")
        else:
            check("no https port unless service.https.enabled", "https" not in sp, "https port rendered")
        check("traffic Service does not expose the admin port",
              all(ports.get(x.get("targetPort"), x.get("targetPort")) != 8877 for x in sp.values()),
              "admin port on the traffic Service")
    admin = svcs.get(fullname + "-admin")
    if values["adminService"]["enabled"]:
        ok = admin is not None and admin["spec"].get("type") == "ClusterIP" and [
            ports.get(x.get("targetPort"), x.get("targetPort")) for x in admin["spec"]["ports"]] == [8877]
        check("admin Service: ClusterIP to 8877 when enabled", ok, f"admin Service {admin and admin['spec']}")
    else:
        check("no admin Service unless adminService.enabled", admin is None, "admin Service rendered")
    check("no other Service", set(svcs) <= {fullname, fullname + "-admin"}, f"Services {sorted(svcs)}")

    # --- ServiceAccount and RBAC -----------------------------------------------
    sa_name = pod.get("serviceAccountName")
    if values["serviceAccount"]["create"]:
        sas = [s["metadata"]["name"] for s in by_kind(objs, "ServiceAccount")]
        check("the pod's ServiceAccount is rendered", sas == [sa_name], f"ServiceAccounts {sas}, pod uses {sa_name}")
    roles = by_kind(objs, "Role") + by_kind(objs, "ClusterRole")
    bindings = by_kind(objs, "RoleBinding") + by_kind(objs, "ClusterRoleBinding")
    if not values["rbac"]["create"]:
        check("no RBAC when rbac.create is false", not roles and not bindings, "RBAC objects rendered")
        return
    want = "Role" if single else "ClusterRole"
    check(f"RBAC is one {want} and one {want}Binding",
          [r["kind"] for r in roles] == [want] and [b["kind"] for b in bindings] == [want + "Binding"],
          f"roles {[r['kind'] for r in roles]}, bindings {[b['kind'] for b in bindings]}")
    if single:
        nss = {o["metadata"].get("namespace") for o in roles + bindings}
        check("Role and RoleBinding live in the watched namespace", nss == {watch_ns}, f"namespaces {nss}")
    for r in roles:
        got = {}
        problems = []
        for rule in r.get("rules", []):
            for key in rule:
                if key not in ("apiGroups", "resources", "verbs"):
                    problems.append(f"unexpected {key}")
            for g in rule.get("apiGroups", []):
                for res in rule.get("resources", []):
                    got.setdefault((g, res), set()).update(rule.get("verbs", []))
        flat = json.dumps(r.get("rules", []))
        if "*" in flat:
            problems.append("wildcard")
        if got != RBAC_RULES:
            problems.append("rules " + json.dumps({f"{g}/{res}": sorted(v) for (g, res), v in sorted(got.items())}))
        check(f"{r['kind']} is exactly least privilege (services get/list/watch, events create/patch)",
              not problems, "; ".join(problems))
    for b in bindings:
        rr = b.get("roleRef", {})
        subj = b.get("subjects", [])
        check(f"{b['kind']} binds the role to the pod's ServiceAccount",
              roles and rr.get("kind") == roles[0]["kind"] and rr.get("name") == roles[0]["metadata"]["name"]
              and subj == [{"kind": "ServiceAccount", "name": sa_name, "namespace": RELEASE_NAMESPACE}],
              f"roleRef {rr}, subjects {subj}")


def binflags(rendered, build):
    """The flags each container passes exist in the real binary's --help."""
    import subprocess
    dep = by_kind(load_all(rendered), "Deployment")[0]
    for c in dep["spec"]["template"]["spec"]["containers"]:
        exe = os.path.join(build, os.path.basename(c["command"][0]))
        try:
            out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10)
            helptext = out.stdout + out.stderr
        except OSError as e:
            check(f"{c['name']} flags exist in {exe} --help", False, str(e))
            continue
        known = set(re.findall(r"^\s+(--[a-z][a-z0-9-]*)", helptext, re.M))
        used = {str(a).partition("=")[0] for a in c.get("args", []) if str(a).startswith("--")}
        check(f"{c['name']} flags exist in {os.path.basename(exe)} --help", known and used <= known,
              f"not in --help: {sorted(used - known)}" if known else f"no flags in --help output: {helptext[:200]!r}")


def tojson(out, files):
    items = []
    for path in files:
        for obj in load_all(path):
            items.append({"source": os.path.basename(path), "object": obj})
    with open(out, "w") as f:
        json.dump(items, f)
    check(f"{len(items)} objects read", items, "no objects")


def docs_checks(chart_dir, docs):
    """Every leaf of values.yaml has a `# --` comment on itself or on an
    enclosing key, and each commented key has a row in the docs table."""
    lines = open(os.path.join(chart_dir, "values.yaml")).read().splitlines()
    documented = set()
    stack = []  # (indent, key)
    pending = False
    for line in lines:
        s = line.strip()
        if s.startswith("# --"):
            pending = True
            continue
        if not s or s.startswith("#"):
            continue
        m = re.match(r"^( *)([A-Za-z0-9_]+):", line)
        if not m:
            continue  # list items and the contents of documented objects
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        if pending:
            documented.add(".".join(k for _, k in stack))
        pending = False

    with open(os.path.join(chart_dir, "values.yaml")) as f:
        values = yaml.safe_load(f)

    def leaves(v, prefix=""):
        if isinstance(v, dict) and v:
            for k, x in v.items():
                yield from leaves(x, f"{prefix}.{k}" if prefix else k)
        else:
            yield prefix

    undocumented = []
    for leaf in leaves(values):
        parts = leaf.split(".")
        if not any(".".join(parts[:i]) in documented for i in range(1, len(parts) + 1)):
            undocumented.append(leaf)
    check("every value has a `# --` comment in values.yaml", not undocumented,
          "no comment for " + ", ".join(undocumented))
    text = open(docs).read()
    table = dict(re.findall(r"^\| `([A-Za-z0-9_.]+)` \| `([^|]*)` \|", text, re.M))
    rows = set(table)
    missing = sorted(documented - rows)
    check(f"every value has a row in {os.path.basename(docs)}", not missing, "missing rows: " + ", ".join(missing))
    extra = sorted(rows - documented)
    check(f"{os.path.basename(docs)} lists no value the chart lacks", not extra, "unknown: " + ", ".join(extra))
    wrong = []
    for key in sorted(rows & documented):
        v = values
        for k in key.split("."):
            v = v[k]
        try:
            shown = json.loads(table[key])
        except ValueError:
            shown = table[key]
        if shown != v:
            wrong.append(f"{key} shows {table[key]}, values.yaml has {json.dumps(v)}")
    check(f"{os.path.basename(docs)} shows the defaults of values.yaml", not wrong, "; ".join(wrong))


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "render":
        render_checks(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
    elif len(sys.argv) >= 4 and sys.argv[1] == "tojson":
        tojson(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 4 and sys.argv[1] == "binflags":
        binflags(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "docs":
        docs_checks(sys.argv[2], sys.argv[3])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    finish()


if __name__ == "__main__":
    main()
