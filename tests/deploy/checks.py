"""Project-specific checks of deploy/ (run by tests/deploy/validate).

The schema validators say a file is a valid Deployment or Compose file; these
checks say it deploys *this* product: every worker has a Deployment with both
probes on the metrics port and a PodDisruptionBudget, every KA_* key is one the
code reads and every value one it accepts, the image installs what the
binaries link, the dashboards query metrics the workers export.

    checks.py --root DIR --rendered K8S.yaml [--compose-json P.json]
              [--kactl PATH] [--binary PATH]...

Prints one line per check and, last, "checks: N passed, M failed".
"""

import argparse
import fnmatch
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

import yaml

try:
    import promql_parser
except ImportError:  # reported by the dashboard checks
    promql_parser = None


# --- reporting -----------------------------------------------------------------

class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.notes = []

    def check(self, name, problems):
        """problems: list of strings; empty means the check passed."""
        if problems:
            self.failed += 1
            print(f"FAIL {name}")
            for p in problems:
                print(f"       - {p}")
        else:
            self.passed += 1
            print(f"ok   {name}")

    def note(self, text):
        print(f"note {text}")


R = Report()


# --- reading the project ---------------------------------------------------------

def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    dups = sorted({k for k in keys if keys.count(k) > 1})
    if dups:
        raise ValueError(f"duplicate keys {dups}")
    return dict(pairs)


def workers(root):
    """The workers the build makes: services/CMakeLists.txt's subdirectories whose
    main.c runs ka_service_main. Returns {name: topic_key}."""
    found, unbuilt = {}, []
    built = re.findall(r"add_subdirectory\(\s*([\w-]+)\s*\)",
                       read(os.path.join(root, "services/CMakeLists.txt")))
    for d in sorted(os.listdir(os.path.join(root, "services"))):
        main = os.path.join(root, "services", d, "main.c")
        if not os.path.isfile(main) or "ka_service_main" not in read(main):
            continue
        text = read(main)
        name = re.search(r'\.name\s*=\s*"([\w-]+)"', text)
        topic = re.search(r'\.topic_key\s*=\s*"(KA_\w+)"', text)
        if d not in built:
            unbuilt.append(d)
            continue
        found[name.group(1) if name else d] = topic.group(1) if topic else None
    for d in unbuilt:
        R.note(f"services/{d} is a worker the build does not make yet (not in services/CMakeLists.txt): "
               "not required in deploy/ until it is")
    return found


def deployed(root, wk):
    """What deploy/ runs as a worker would be run: the workers and the alert
    bridge (no ka_service_main, but a consumer with probes all the same),
    by their command. Returns {command: input topic key}."""
    out = dict(wk)
    built = re.findall(r"add_subdirectory\(\s*([\w-]+)\s*\)",
                       read(os.path.join(root, "services/CMakeLists.txt")))
    if "alert-bridge" in built:
        out["ka-alert-bridge"] = "KA_TOPIC_ALERT"
    return out


def alertmanager_hosts(urls):
    """The host names of KA_ALERTMANAGER_URLS."""
    return [re.sub(r"^\w+://([^@/]*@)?", "", u.strip()).split("/")[0].split(":")[0]
            for u in str(urls or "").split(",") if u.strip()]


def check_alertmanager(project, rendered):
    """The bridge posts to Alertmanagers that are deployed beside it."""
    problems = []
    services = project.get("services") or {}
    am = services.get("alertmanager") or {}
    if not str(am.get("image", "")).startswith("prom/alertmanager:v0.25"):
        problems.append(f"compose: alertmanager image is {am.get('image')!r}, not prom/alertmanager:v0.25.x")
    env = (services.get("ka-alert-bridge") or {}).get("environment") or {}
    hosts = alertmanager_hosts(env.get("KA_ALERTMANAGER_URLS"))
    if not hosts or any(h not in services for h in hosts):
        problems.append(f"compose: KA_ALERTMANAGER_URLS {env.get('KA_ALERTMANAGER_URLS')!r} names no service")
    docs = [d for d in yaml.safe_load_all(read(rendered)) if d]
    sts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "StatefulSet"}
    svcs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    bridge = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "ka-alert-bridge"]
    urls = [e.get("value") for d in bridge for c in d["spec"]["template"]["spec"]["containers"]
            for e in c.get("env") or [] if e["name"] == "KA_ALERTMANAGER_URLS"]
    s = sts.get("alertmanager")
    if not s:
        problems.append("k8s: no StatefulSet alertmanager")
    else:
        img = s["spec"]["template"]["spec"]["containers"][0].get("image", "")
        if not img.startswith("prom/alertmanager:v0.25"):
            problems.append(f"k8s: alertmanager image is {img!r}, not prom/alertmanager:v0.25.x")
        members = {f"alertmanager-{i}.{s['spec'].get('serviceName')}" for i in range(s["spec"].get("replicas", 1))}
        if s["spec"].get("serviceName") not in svcs:
            problems.append("k8s: the alertmanager StatefulSet's serviceName is not a Service")
        got = set(alertmanager_hosts(urls[0] if urls else ""))
        if got != members:
            problems.append(f"k8s: the bridge's KA_ALERTMANAGER_URLS names {sorted(got)}, "
                            f"the cluster's members are {sorted(members)}")
    R.check("Alertmanager 0.25 is deployed beside the alert bridge, which posts to every member", problems)


def config_keys(root, kactl):
    """{KEY: default} from `kactl config`, else from common/ka_config.c."""
    src = {}
    for m in re.finditer(r'\{"(KA_[A-Z0-9_]+)",\s*KEY_\w+,\s*(NULL|"[^"]*")',
                         read(os.path.join(root, "common/ka_config.c"))):
        src[m.group(1)] = None if m.group(2) == "NULL" else m.group(2).strip('"')
    src["KA_CONFIG_FILE"] = None
    if kactl:
        out = subprocess.run([kactl, "config"], capture_output=True, text=True, env=clean_env(),
                             timeout=30)
        if out.returncode == 0:
            keys = {}
            for m in re.finditer(r"^\| `(KA_[A-Z0-9_]+)` \| (`([^`]*)`|[^|]*) \|", out.stdout, re.M):
                keys[m.group(1)] = m.group(3)
            if keys:
                if set(keys) != set(src):
                    R.note(f"`{kactl} config` and common/ka_config.c disagree on "
                           f"{sorted(set(keys) ^ set(src))}: is the binary stale? using the binary's")
                return keys, f"`kactl config` ({kactl})"
        R.note(f"`{kactl} config` failed ({out.stderr.strip()[:200]}); reading common/ka_config.c")
    return src, "common/ka_config.c"


def clean_env():
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


def kactl_accepts(kactl, values):
    """Runs `kactl --config FILE config` on values ({KEY: VALUE}): the product's
    own validation (ranges, enums, unknown keys). Returns its error or None."""
    with tempfile.NamedTemporaryFile("w", suffix=".env", delete=False) as f:
        for k, v in values.items():
            f.write(f"{k}={v}\n")
        path = f.name
    try:
        out = subprocess.run([kactl, "--config", path, "config"], capture_output=True, text=True,
                             env=clean_env(), timeout=30)
        return None if out.returncode == 0 else (out.stderr.strip() or f"exit {out.returncode}")
    finally:
        os.unlink(path)


def topics(root):
    t = {}
    for line in read(os.path.join(root, "deploy/local/topics")).splitlines():
        line = line.split("#", 1)[0].split()
        if len(line) >= 2:
            t[line[0]] = int(line[1])
    return t


def kafka_version(root):
    m = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", read(os.path.join(root, "deploy/kafka/pom.xml")))
    return m.group(1) if m else None


# --- 1. well-formed YAML and JSON ------------------------------------------------

def check_well_formed(root):
    problems, n = [], 0
    for path in sorted(glob.glob(os.path.join(root, "deploy/**/*"), recursive=True)):
        rel = os.path.relpath(path, root)
        if path.endswith((".yaml", ".yml")):
            n += 1
            try:
                list(yaml.safe_load_all(read(path)))
            except yaml.YAMLError as e:
                problems.append(f"{rel}: {e}")
        elif path.endswith(".json"):
            n += 1
            try:
                json.loads(read(path), object_pairs_hook=no_duplicate_keys)
            except ValueError as e:
                problems.append(f"{rel}: {e}")
    R.check(f"{n} YAML and JSON files under deploy/ parse (JSON without duplicate keys)", problems)


# --- 2. Kubernetes ------------------------------------------------------------------

QTY = re.compile(r"^([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
QTY_SCALE = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def qty(v):
    m = QTY.match(str(v))
    return float(m.group(1)) * QTY_SCALE[m.group(2)] if m else None


def check_k8s(root, rendered, wk, keys, kactl, tops):
    kdir = os.path.join(root, "deploy/k8s")
    kust = yaml.safe_load(read(os.path.join(kdir, "kustomization.yaml")))
    listed = set(kust.get("resources") or [])
    for g in kust.get("configMapGenerator") or []:
        listed |= set(g.get("envs") or []) | set(g.get("files") or [])
    R.check("k8s: every file in deploy/k8s is part of kustomization.yaml",
            [f"deploy/k8s/{f} is not listed in kustomization.yaml (so never validated nor applied)"
             for f in sorted(os.listdir(kdir)) if f != "kustomization.yaml" and f not in listed])
    docs = [d for d in yaml.safe_load_all(read(rendered)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    # The KA_* configuration: the ConfigMaps pods take their environment from
    # (others, such as Alertmanager's file, are mounted, not KA_* keys).
    env_from = {ef["configMapRef"]["name"] for d in docs if d["kind"] in ("Deployment", "Job")
                for c in d["spec"]["template"]["spec"]["containers"]
                for ef in c.get("envFrom") or [] if ef.get("configMapRef")}
    configmaps = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])
                  if not env_from or d["metadata"]["name"] in env_from}
    secrets = {d["metadata"]["name"]: d for d in by_kind.get("Secret", [])}
    pdbs = by_kind.get("PodDisruptionBudget", [])
    jobs = by_kind.get("Job", [])

    # The configuration: ConfigMap keys are real, shared-safe and accepted.
    problems, cm_values = [], {}
    for name, cm in configmaps.items():
        for k, v in (cm.get("data") or {}).items():
            cm_values[k] = v
            if k not in keys:
                problems.append(f"ConfigMap {name}: {k} is not a configuration key (see `kactl config`)")
    for k in ("KA_CONSUMER_GROUP", "KA_CE_SOURCE"):
        if k in cm_values:
            problems.append(f"the shared ConfigMap sets {k}: every worker would get the same one "
                            "(leave it to the per-service default)")
    if "KA_PG_DSN" in cm_values:
        problems.append("KA_PG_DSN is in a ConfigMap: it carries the password, it belongs in the Secret")
    if cm_values.get("KA_CLOCK_OFFSET_MS", "0") != "0":
        problems.append("KA_CLOCK_OFFSET_MS is not 0: it shifts the workers' clock (drills and tests only)")
    if cm_values.get("KA_HTTP_ADDR", "127.0.0.1") in ("127.0.0.1", "localhost", "::1"):
        problems.append("KA_HTTP_ADDR is loopback (the default): probes and scrapes could not reach the pod")
    if not cm_values.get("KA_HTTP_PORT") or cm_values.get("KA_HTTP_PORT") == "0":
        problems.append("KA_HTTP_PORT is unset or 0: no /metrics, /healthz, /readyz")
    for k, v in cm_values.items():
        if k.startswith("KA_TOPIC_") and v not in tops:
            problems.append(f"{k}={v} is not a topic of deploy/local/topics")
    R.check(f"k8s: ConfigMap keys are KA_* keys of {KEYS_FROM[0]}, safe to share, metrics endpoint reachable",
            problems)

    problems = []
    for name, s in secrets.items():
        for k in list((s.get("stringData") or {})) + list((s.get("data") or {})):
            if k.startswith("KA_") and k not in keys:
                problems.append(f"Secret {name}: {k} is not a configuration key")
    if not any("KA_PG_DSN" in ((s.get("stringData") or {}) | (s.get("data") or {})) for s in secrets.values()):
        problems.append("no Secret holds KA_PG_DSN")
    R.check("k8s: the Secret holds KA_PG_DSN and only real keys", problems)

    if kactl:
        values = dict(cm_values)
        for s in secrets.values():
            values.update({k: v for k, v in (s.get("stringData") or {}).items() if k.startswith("KA_")})
        err = kactl_accepts(kactl, values)
        R.check("k8s: kactl accepts the ConfigMap and Secret values (its own range and enum checks)",
                [err] if err else [])
    else:
        R.note("no kactl binary: the ConfigMap's values were not run through kactl's validation")

    http_port = int(cm_values.get("KA_HTTP_PORT", "0") or 0)

    def env_refs(pod, what):
        """Problems with a pod's env: unknown KA_* names, missing ConfigMap/Secret refs."""
        out = []
        for c in pod["spec"]["containers"]:
            for e in c.get("env") or []:
                if e["name"].startswith("KA_") and e["name"] not in keys:
                    out.append(f"{what}: env {e['name']} is not a configuration key")
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    s = secrets.get(ref["name"])
                    if not s:
                        out.append(f"{what}: env {e['name']} names Secret {ref['name']}, which is not rendered")
                    elif ref["key"] not in ((s.get("stringData") or {}) | (s.get("data") or {})):
                        out.append(f"{what}: Secret {ref['name']} has no key {ref['key']}")
            for ef in c.get("envFrom") or []:
                ref = ef.get("configMapRef")
                if ref and ref["name"] not in configmaps:
                    out.append(f"{what}: envFrom names ConfigMap {ref['name']}, which is not rendered")
            if not any(ef.get("configMapRef") for ef in c.get("envFrom") or []):
                out.append(f"{what}: no envFrom of the KA_* ConfigMap")
            if not any(e["name"] == "KA_PG_DSN" and (e.get("valueFrom") or {}).get("secretKeyRef")
                       for e in c.get("env") or []):
                out.append(f"{what}: KA_PG_DSN does not come from a Secret")
            img = c.get("image", "")
            if ":" not in img.rsplit("/", 1)[-1] or img.endswith(":latest"):
                out.append(f"{what}: image {img!r} has no pinned tag")
        return out

    # Every worker: a Deployment with both probes on the named metrics port,
    # resources, a sane replica count, and a PDB that selects it.
    for w, topic_key in sorted(wk.items()):
        problems = []
        d = deployments.get(w)
        if not d:
            R.check(f"k8s: worker {w} has a Deployment with both probes and a PDB",
                    [f"no Deployment named {w} (deploy/k8s/{w}.yaml, listed in kustomization.yaml)"])
            continue
        pod = d["spec"]["template"]
        labels = pod["metadata"].get("labels") or {}
        sel = d["spec"]["selector"].get("matchLabels") or {}
        cs = [c for c in pod["spec"]["containers"] if (c.get("command") or c.get("args") or [None])[0] == w]
        if not cs:
            problems.append(f"no container runs {w} (command: [{w}])")
        for c in cs:
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                pr = c.get(probe)
                hg = (pr or {}).get("httpGet")
                if not hg:
                    problems.append(f"{probe} missing or not httpGet")
                    continue
                if hg.get("path") != path:
                    problems.append(f"{probe} probes {hg.get('path')}, not {path}")
                port = hg.get("port")
                if not isinstance(port, str):
                    problems.append(f"{probe} uses port {port!r}, not the named port")
                elif port not in ports:
                    problems.append(f"{probe} port {port!r} is not a named containerPort")
                elif ports[port] != http_port:
                    problems.append(f"{probe} port {port} is {ports[port]}, KA_HTTP_PORT is {http_port}")
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in (res.get(part) or {}):
                        problems.append(f"resources.{part}.{r} missing")
            for r in ("cpu", "memory"):
                rq, lim = qty((res.get("requests") or {}).get(r)), qty((res.get("limits") or {}).get(r))
                if rq is not None and lim is not None and rq > lim:
                    problems.append(f"{r} request above its limit")
            sc = c.get("securityContext") or {}
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append("allowPrivilegeEscalation is not false")
        psc = pod["spec"].get("securityContext") or {}
        if psc.get("runAsNonRoot") is not True:
            problems.append("pod securityContext.runAsNonRoot is not true")
        if pod["spec"].get("terminationGracePeriodSeconds", 30) <= 20:
            problems.append("terminationGracePeriodSeconds must exceed the 20 s drain bound")
        if not sel or any(labels.get(k) != v for k, v in sel.items()):
            problems.append("selector does not match the pod labels")
        topic = cm_values.get(topic_key) or keys.get(topic_key)
        parts = tops.get(topic)
        if parts is None:
            problems.append(f"input topic {topic_key}={topic} is not in deploy/local/topics")
        elif d["spec"].get("replicas", 1) > parts:
            problems.append(f"replicas {d['spec']['replicas']} > {parts} partitions of {topic}: "
                            "the extra instances would idle")
        problems += env_refs(pod, f"Deployment {w}")
        matching = [p for p in pdbs
                    if (p["spec"].get("selector") or {}).get("matchLabels")
                    and all(labels.get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items())]
        if not matching:
            problems.append("no PodDisruptionBudget selects its pods")
        for p in matching:
            s = p["spec"]
            if "maxUnavailable" not in s and "minAvailable" not in s:
                problems.append(f"PDB {p['metadata']['name']} sets neither maxUnavailable nor minAvailable")
            if s.get("maxUnavailable") in (0, "0%") or \
                    (isinstance(s.get("minAvailable"), int) and s["minAvailable"] >= d["spec"].get("replicas", 1)):
                problems.append(f"PDB {p['metadata']['name']} allows no disruption: node drains would hang")
        R.check(f"k8s: worker {w} has a Deployment with liveness /healthz and readiness /readyz on the named "
                f"port {http_port}, resources, a PDB ({topic}: {parts} partitions, "
                f"{d['spec'].get('replicas', 1)} replicas)", problems)

    # ka-api is a service, not a worker (no topic, no group): a Deployment
    # with both probes on its one port, resources and a PDB.
    a = deployments.get("ka-api")
    problems = [] if a else ["no Deployment named ka-api (deploy/k8s/api.yaml)"]
    if a:
        pod = a["spec"]["template"]
        labels = pod["metadata"].get("labels") or {}
        cs = [c for c in pod["spec"]["containers"] if (c.get("command") or [None])[0] == "ka-api"]
        if not cs:
            problems.append("no container runs ka-api (command: [ka-api])")
        for c in cs:
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                hg = (c.get(probe) or {}).get("httpGet") or {}
                if hg.get("path") != path or ports.get(hg.get("port")) != 18080:
                    problems.append(f"{probe} does not probe {path} on the named port 18080 (KA_API_PORT)")
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set((c.get("resources") or {}).get(part) or {}):
                    problems.append(f"resources.{part} lacks cpu or memory")
        problems += env_refs(pod, "Deployment ka-api")
        sels = [(p["spec"].get("selector") or {}).get("matchLabels") for p in pdbs]
        if not any(s and all(labels.get(k) == v for k, v in s.items()) for s in sels):
            problems.append("no PodDisruptionBudget selects its pods")
    R.check("k8s: ka-api has a Deployment with liveness /healthz and readiness /readyz on port 18080, "
            "resources, a PDB", problems)

    extra = sorted(set(deployments) - set(wk) - {"ka-api"})
    R.check("k8s: every Deployment runs a worker the build makes",
            [f"Deployment {x} is not a worker of services/CMakeLists.txt" for x in extra])

    problems = []
    mig = [j for j in jobs if any((c.get("command") or [])[:2] == ["kactl", "migrate"]
                                  for c in j["spec"]["template"]["spec"]["containers"])]
    if not mig:
        problems.append("no Job runs `kactl migrate`")
    for j in mig:
        problems += env_refs(j["spec"]["template"], f"Job {j['metadata']['name']}")
        if j["spec"]["template"]["spec"].get("restartPolicy") not in ("OnFailure", "Never"):
            problems.append("the migration Job's restartPolicy must be OnFailure or Never")
    R.check("k8s: a Job runs `kactl migrate` with the same configuration", problems)


# --- 3. Compose ----------------------------------------------------------------------

def dsn_host(dsn):
    m = re.search(r"(?:^|\s)host=(\S+)", dsn or "")
    return m.group(1) if m else None


def normalize_compose(raw, base):
    """The little of compose-go's normalization the checks rely on, for when
    composecheck could not be built: short volume and port syntax, absolute
    paths, depends_on as a map."""
    for s in (raw.get("services") or {}).values():
        vols = []
        for v in s.get("volumes") or []:
            if isinstance(v, str):
                src, _, rest = v.partition(":")
                v = {"source": src, "target": rest.split(":")[0]}
            if str(v.get("source", "")).startswith("."):
                v["source"] = os.path.normpath(os.path.join(base, v["source"]))
            vols.append(v)
        s["volumes"] = vols
        s["ports"] = [{"target": str(p).split(":")[-1].split("/")[0]} if not isinstance(p, dict) else p
                      for p in s.get("ports") or []]
        if isinstance(s.get("depends_on"), list):
            s["depends_on"] = {d: {"condition": "service_started"} for d in s["depends_on"]}
        b = s.get("build")
        if isinstance(b, str):
            b = s["build"] = {"context": b, "dockerfile": "Dockerfile"}
        if b:
            b["context"] = os.path.normpath(os.path.join(base, b.get("context", ".")))
        if isinstance(s.get("environment"), list):
            s["environment"] = dict(e.split("=", 1) if "=" in e else (e, None) for e in s["environment"])
        if isinstance(s.get("command"), str):
            s["command"] = shlex.split(s["command"])
    return raw


def check_compose(root, project, wk, keys, kactl, tops):
    services = project.get("services") or {}
    problems = []
    img = lambda s: (services.get(s) or {}).get("image", "")  # noqa: E731
    if not img("postgres").startswith("postgres:15"):
        problems.append(f"postgres image is {img('postgres')!r}, not postgres:15")
    if not img("redis").startswith("redis:7"):
        problems.append(f"redis image is {img('redis')!r}, not redis:7")
    kv = kafka_version(root)
    if img("kafka") != f"apache/kafka:{kv}":
        problems.append(f"kafka image is {img('kafka')!r}, deploy/kafka/pom.xml pins {kv}: apache/kafka:{kv}")
    if kv and not kv.startswith("4."):
        problems.append(f"Kafka {kv} is not 4.x")
    kenv = (services.get("kafka") or {}).get("environment") or {}
    roles = set(str(kenv.get("KAFKA_PROCESS_ROLES", "")).split(","))
    if not {"broker", "controller"} <= roles:
        problems.append("kafka is not a KRaft broker+controller (KAFKA_PROCESS_ROLES)")
    if str(kenv.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "")).lower() != "false":
        problems.append("kafka creates topics automatically (KAFKA_AUTO_CREATE_TOPICS_ENABLE is not false)")
    R.check(f"compose: PostgreSQL 15, Redis 7, Kafka {kv} (deploy/kafka/pom.xml) in KRaft mode", problems)

    # One-shot jobs.
    problems = []
    t = services.get("topics") or {}
    mounts = [v for v in t.get("volumes") or []
              if os.path.normpath(str(v.get("source", ""))) == os.path.join(root, "deploy/local/topics")]
    if not mounts:
        problems.append("the topics job does not mount deploy/local/topics (the one list of topics)")
    if t.get("restart", "no") != "no":
        problems.append("the topics job restarts")
    m = services.get("migrate") or {}
    if (m.get("command") or [])[:2] != ["kactl", "migrate"]:
        problems.append("no migrate service running `kactl migrate`")
    R.check("compose: one-shot jobs create deploy/local/topics' topics and run `kactl migrate`", problems)

    # The image.
    problems = []
    image = m.get("image")
    build = m.get("build") or {}
    dockerfile = os.path.join(build.get("context", ""), build.get("dockerfile", ""))
    if os.path.normpath(dockerfile) != os.path.join(root, "deploy/container/Dockerfile"):
        problems.append(f"migrate builds {dockerfile}, not deploy/container/Dockerfile")
    R.check("compose: the workers' image is built from deploy/container/Dockerfile", problems)

    for w in sorted(wk):
        problems = []
        s = services.get(w)
        if not s:
            R.check(f"compose: worker {w} runs with a /readyz healthcheck",
                    [f"no service {w} in deploy/compose.yaml"])
            continue
        if (s.get("command") or [None])[0] != w:
            problems.append(f"command is {s.get('command')}, not [{w}]")
        if s.get("image") != image:
            problems.append(f"image {s.get('image')!r} is not the migrate job's {image!r}")
        env = {k: v for k, v in (s.get("environment") or {}).items() if v is not None}
        for k in env:
            if k.startswith("KA_") and k not in keys:
                problems.append(f"environment {k} is not a configuration key")
        for k in ("KA_CONSUMER_GROUP", "KA_CE_SOURCE"):
            if k in env:
                problems.append(f"sets {k}; leave it to the per-service default")
        if env.get("KA_HTTP_ADDR", "127.0.0.1") in ("127.0.0.1", "localhost", "::1"):
            problems.append("KA_HTTP_ADDR is loopback: published ports could not reach it")
        port = env.get("KA_HTTP_PORT", "0")
        hc = " ".join(map(str, (s.get("healthcheck") or {}).get("test") or []))
        if "/readyz" not in hc or f"/{port}" not in hc:
            problems.append(f"healthcheck does not probe /readyz on KA_HTTP_PORT {port}: {hc!r}")
        if not any(str(p.get("target")) == str(port) for p in s.get("ports") or []):
            problems.append(f"KA_HTTP_PORT {port} is not published")
        deps = s.get("depends_on") or {}
        for dep, cond in (("migrate", "service_completed_successfully"),
                          ("topics", "service_completed_successfully"),
                          ("postgres", "service_healthy"), ("redis", "service_healthy"),
                          ("kafka", "service_healthy")):
            if (deps.get(dep) or {}).get("condition") != cond:
                problems.append(f"does not wait for {dep} ({cond})")
        if dsn_host(env.get("KA_PG_DSN")) not in services:
            problems.append(f"KA_PG_DSN host {dsn_host(env.get('KA_PG_DSN'))!r} is not a service")
        if env.get("KA_REDIS_HOST") not in services:
            problems.append(f"KA_REDIS_HOST {env.get('KA_REDIS_HOST')!r} is not a service")
        for b in str(env.get("KA_KAFKA_BROKERS", "")).split(","):
            if b.split(":")[0] not in services:
                problems.append(f"KA_KAFKA_BROKERS {b!r} is not a service")
        topic = env.get(wk[w]) or keys.get(wk[w])
        if topic not in tops:
            problems.append(f"input topic {wk[w]}={topic} is not in deploy/local/topics")
        for k, v in env.items():
            if k.startswith("KA_TOPIC_") and v not in tops:
                problems.append(f"{k}={v} is not a topic of deploy/local/topics")
        grace = str(s.get("stop_grace_period") or "10s")
        if not re.fullmatch(r"\d+s", grace) or int(grace[:-1]) <= 20:
            problems.append(f"stop_grace_period {grace} must exceed the 20 s drain bound")
        if kactl:
            err = kactl_accepts(kactl, {k: v for k, v in env.items() if k.startswith("KA_")})
            if err:
                problems.append(f"kactl rejects its environment: {err}")
        R.check(f"compose: worker {w} runs with a /readyz healthcheck, real KA_* keys kactl accepts, "
                "after migrate and topics", problems)

    # ka-api: the image, its port published with a /readyz healthcheck, after migrate.
    s = services.get("ka-api") or {}
    env = {k: v for k, v in (s.get("environment") or {}).items() if v is not None}
    port = env.get("KA_API_PORT", "18080")
    hc = " ".join(map(str, (s.get("healthcheck") or {}).get("test") or []))
    problems = [] if s else ["no service ka-api in deploy/compose.yaml"]
    if s and (s.get("command") or [None])[0] != "ka-api":
        problems.append(f"command is {s.get('command')}, not [ka-api]")
    if s and s.get("image") != image:
        problems.append(f"image {s.get('image')!r} is not the migrate job's {image!r}")
    if s and ("/readyz" not in hc or f"/{port}" not in hc):
        problems.append(f"healthcheck does not probe /readyz on KA_API_PORT {port}")
    if s and not any(str(p.get("target")) == str(port) for p in s.get("ports") or []):
        problems.append(f"KA_API_PORT {port} is not published")
    if s and ((s.get("depends_on") or {}).get("migrate") or {}).get("condition") != \
            "service_completed_successfully":
        problems.append("does not wait for migrate")
    if s and kactl:
        err = kactl_accepts(kactl, {k: v for k, v in env.items() if k.startswith("KA_")})
        if err:
            problems.append(f"kactl rejects its environment: {err}")
    R.check("compose: ka-api runs from the image with a /readyz healthcheck on its published port, "
            "after migrate", problems)


# --- 4. Dockerfile -------------------------------------------------------------------

# The runtime package of each -dev package of deploy/local/deps (None: build
# only). A new -dev package there must be added here and to the Dockerfile.
RUNTIME_OF = {
    "librdkafka-dev": "librdkafka1",
    "libprotobuf-c-dev": "libprotobuf-c1",
    "libhiredis-dev": "libhiredis0.14",
    "libpq-dev": "libpq5",
    "libjansson-dev": "libjansson4",
    "libcjson-dev": "libcjson1",
    "libmicrohttpd-dev": "libmicrohttpd12",
    "libcsv-dev": "libcsv3",
    "libcurl4-openssl-dev": "libcurl4",
    "libssl-dev": "libssl3",
    "libcmocka-dev": None,
}
BUILD_TOOLS = ["build-essential", "cmake", "pkg-config", "protobuf-c-compiler"]
# Packages of debian:12-slim itself (Priority: required), which the binaries may link.
SLIM_BASE = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libzstd1", "liblzma5", "libbz2-1.0",
             "libselinux1", "libpcre2-8-0", "libcrypt1", "libacl1", "libattr1", "libmd0", "libtinfo6"}
# Sanitizer runtimes: in a sanitized build only, never in the image.
SANITIZER_PKGS = {"libasan8", "libubsan1", "liblsan0", "libtsan2"}


def dockerfile_stages(text):
    """[(from_line, [(INSTRUCTION, args)])] with continuation lines joined."""
    lines, cur = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        lines.append(cur + s)
        cur = ""
    stages = []
    for line in lines:
        ins, _, args = line.partition(" ")
        ins = ins.upper()
        if ins == "FROM":
            stages.append((args.strip(), []))
        elif stages:
            stages[-1][1].append((ins, args.strip()))
    return stages


def apt_packages(instructions):
    pkgs = []
    for ins, args in instructions:
        if ins == "RUN":
            for m in re.finditer(r"apt-get install ([^&;|]*)", args):
                pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    return pkgs


def dockerignore_included(root, rel):
    """Docker's .dockerignore rule: the last pattern matching the path or one of
    its parents decides; "!" re-includes."""
    path = os.path.join(root, ".dockerignore")
    if not os.path.isfile(path):
        return True
    pats = []
    for line in read(path).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        pat = os.path.normpath(line[1:] if neg else line).lstrip("/")
        pats.append((neg, pat))
    parts = rel.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    included = True
    for neg, pat in pats:
        rx = re.compile("^" + re.escape(pat).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
                        .replace(r"\*", "[^/]*").replace(r"\?", "[^/]") + "$")
        if any(rx.match(c) for c in candidates):
            included = neg
    return included


def check_dockerfile(root, wk, binaries):
    path = os.path.join(root, "deploy/container/Dockerfile")
    text = read(path)
    stages = dockerfile_stages(text)
    problems = []
    if len(stages) < 2:
        R.check("Dockerfile: multi-stage", ["fewer than two stages"])
        return
    build_from, build = stages[0]
    run_from, runtime = stages[-1]
    if not re.match(r"debian:12(\s|$|-|\.)", build_from) or " as " not in build_from.lower():
        problems.append(f"build stage is FROM {build_from!r}, not a named debian:12 stage")
    if not run_from.startswith("debian:12-slim"):
        problems.append(f"runtime stage is FROM {run_from!r}, not debian:12-slim")
    R.check("Dockerfile: a Debian 12 build stage and a debian:12-slim runtime stage", problems)

    # The product's packages only: deploy/local/deps lists the tests' own
    # tools (test_tools) apart, and the image needs none of them.
    deps = read(os.path.join(root, "deploy/local/deps"))
    block = re.search(r"^packages=\((.*?)^\)", deps, re.S | re.M)
    devs = sorted(set(re.findall(r"\b(lib[\w.+-]+-dev)\b", block.group(1) if block else deps)))
    build_pkgs, run_pkgs = set(apt_packages(build)), set(apt_packages(runtime))
    problems = [f"build stage lacks {p} (deploy/local/deps has it)" for p in devs + BUILD_TOOLS
                if p not in build_pkgs]
    for d in devs:
        if d not in RUNTIME_OF:
            problems.append(f"{d} (deploy/local/deps) has no runtime package in tests/deploy/checks.py "
                            "RUNTIME_OF: add it there and to the Dockerfile's runtime stage")
        elif RUNTIME_OF[d] and RUNTIME_OF[d] not in run_pkgs:
            problems.append(f"runtime stage lacks {RUNTIME_OF[d]} (for {d})")
    problems += [f"runtime stage installs {p}, a -dev package" for p in sorted(run_pkgs) if p.endswith("-dev")]
    R.check(f"Dockerfile: build stage has deploy/local/deps' {len(devs)} -dev packages, runtime stage their "
            f"libraries ({', '.join(sorted(run_pkgs))})", problems)

    if binaries:
        problems, seen = [], set()
        for b in binaries:
            needed = subprocess.run(["readelf", "-d", b], capture_output=True, text=True).stdout
            sonames = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", needed)
            ldd = subprocess.run(["ldd", b], capture_output=True, text=True).stdout
            where = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
            for so in sonames:
                lib = where.get(so)
                if not lib or lib == "not":
                    problems.append(f"{os.path.basename(b)}: {so} not found by ldd")
                    continue
                pkg = None
                for cand in (lib, os.path.realpath(lib)):
                    out = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
                    if out.returncode == 0:
                        pkg = out.stdout.split(":")[0]
                        break
                if not pkg:
                    problems.append(f"{os.path.basename(b)}: {so} ({lib}) belongs to no Debian package")
                    continue
                seen.add(pkg)
                if pkg not in run_pkgs and pkg not in SLIM_BASE and pkg not in SANITIZER_PKGS:
                    problems.append(f"{os.path.basename(b)} links {so} from {pkg}, "
                                    "which the runtime stage does not install")
        R.check(f"Dockerfile: the runtime stage installs every library the {len(binaries)} built binaries link "
                f"({', '.join(sorted(seen - SANITIZER_PKGS))})", problems)
    else:
        R.note("no built binaries given: their linked libraries were not compared with the runtime stage")

    problems = []
    build_text = " ".join(a for i, a in build if i == "RUN")
    for prog in sorted(wk) + ["kactl"]:
        if not re.search(rf"--target\b[^&]*\b{re.escape(prog)}\b", build_text):
            problems.append(f"{prog} is not among the build's --target")
        if not re.search(rf"build/services/{re.escape(prog)}/{re.escape(prog)}\b", build_text):
            problems.append(f"{prog} is not installed into the image")
    R.check(f"Dockerfile: builds and ships {', '.join(sorted(wk))} and kactl", problems)

    problems = []
    users = [a for i, a in runtime if i == "USER"]
    if not users or users[-1].split(":")[0] in ("0", "root"):
        problems.append("the runtime stage does not end as a non-root USER")
    elif not users[-1].split(":")[0].isdigit():
        problems.append(f"USER {users[-1]} is not numeric: Kubernetes' runAsNonRoot cannot verify a name")
    workdir = [a for i, a in build if i == "WORKDIR"]
    sql_dest = [a.split()[-1] for i, a in runtime if i == "COPY" and "deploy/sql" in a and "--from" not in a]
    if not workdir or not sql_dest or \
            os.path.normpath(sql_dest[0]) != os.path.normpath(os.path.join(workdir[0], "deploy/sql")):
        problems.append(f"kactl looks for migrations in <build WORKDIR>/deploy/sql ({workdir} + deploy/sql), "
                        f"the image has them at {sql_dest}")
    env = " ".join(a for i, a in runtime if i == "ENV")
    if "KA_HTTP_ADDR=0.0.0.0" not in env:
        problems.append("the image does not set KA_HTTP_ADDR=0.0.0.0 (the default, loopback, is unreachable)")
    R.check("Dockerfile: non-root numeric USER, migrations where kactl looks, metrics reachable", problems)

    problems = []
    for st in stages:
        for ins, args in st[1]:
            if ins not in ("COPY", "ADD") or "--from" in args:
                continue
            for src in shlex.split(args)[:-1]:
                if src.startswith("--"):
                    continue
                full = os.path.join(root, src)
                if not os.path.exists(full):
                    problems.append(f"COPY {src}: no such path in the repository")
                    continue
                files = [full] if os.path.isfile(full) else \
                    [os.path.join(dp, f) for dp, _, fs in os.walk(full) for f in fs]
                for f in files:
                    rel = os.path.relpath(f, root)
                    if "__pycache__" in rel or rel.endswith(".pyc"):
                        continue
                    if not dockerignore_included(root, rel):
                        problems.append(f"COPY {src}: {rel} is excluded by .dockerignore")
                        break
    for rel in ("build/CMakeCache.txt", ".stack/x", ".git/HEAD"):
        if dockerignore_included(root, rel):
            problems.append(f".dockerignore lets {rel.split('/')[0]}/ into the build context")
    R.check("Dockerfile: every COPY source exists and .dockerignore lets it in (and keeps build/, .stack/, "
            ".git/ out)", problems)


# --- 5. Grafana dashboards ----------------------------------------------------------

REQUIRED_DASHBOARDS = ["funnel-health.json", "consumer-lag.json", "throughput.json", "alerts.json"]
COUNTER_FUNCS = {"rate", "irate", "increase", "resets"}
TARGET_LABELS = {"job", "instance"}


def metric_catalog(root):
    """({name: type} registered in the C sources, {name: (type, labels)} documented
    in docs/operations.md or None)."""
    src = {}
    for path in glob.glob(os.path.join(root, "common/*.c")) + glob.glob(os.path.join(root, "services/*/*.c")):
        for m in re.finditer(r'ka_metrics_(counter|gauge|histogram)\(\s*[^,()]+(?:\([^()]*\))?\s*,\s*"(ka_\w+)"',
                             read(path)):
            src[m.group(2)] = m.group(1)
    docs = None
    ops = os.path.join(root, "docs/operations.md")
    if os.path.isfile(ops):
        docs = {}
        for m in re.finditer(r"^\|\s*`(ka_\w+)(?:\{([\w,]*)\})?`\s*\|\s*(counter|gauge|histogram)\s*\|",
                             read(ops), re.M):
            docs[m.group(1)] = (m.group(3), set(filter(None, (m.group(2) or "").split(","))))
    return src, docs


def promql_selectors(node, funcs=()):
    """Yields (VectorSelector, enclosing function names) of a parsed expression."""
    kind = type(node).__name__
    if kind == "VectorSelector":
        yield node, funcs
        return
    if kind == "MatrixSelector":
        yield from promql_selectors(node.vector_selector, funcs)
        return
    if kind == "Call":
        funcs = funcs + (node.func.name,)
        for a in node.args:
            yield from promql_selectors(a, funcs)
        return
    for attr in ("lhs", "rhs", "expr", "param"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (str, int, float)):
            yield from promql_selectors(child, funcs)


def promql_calls(node):
    """Yields every function Call of a parsed expression."""
    kind = type(node).__name__
    if kind == "Call":
        yield node
        for a in node.args:
            yield from promql_calls(a)
        return
    for attr in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (str, int, float)):
            yield from promql_calls(child)


def substitute_vars(expr):
    expr = re.sub(r"\$\{?__(rate_interval|interval|range)\}?", "5m", expr)
    return re.sub(r"\$\{?\w+(:\w+)?\}?", "x", expr)


def check_dashboards(root):
    gdir = os.path.join(root, "deploy/grafana")
    src, docs = metric_catalog(root)
    problems = [f"deploy/grafana/{f} is missing" for f in REQUIRED_DASHBOARDS
                if not os.path.isfile(os.path.join(gdir, f))]
    if not src:
        problems.append("no ka_metrics_counter/gauge/histogram registrations found in common/ or services/")
    R.check(f"grafana: dashboards {', '.join(REQUIRED_DASHBOARDS)} exist; {len(src)} metrics registered in the "
            f"sources{'' if docs is None else f', {len(docs)} documented in docs/operations.md'}", problems)
    if docs is None:
        R.note("docs/operations.md not found: dashboard metrics are checked against the sources only")
    if promql_parser is None:
        R.check("grafana: PromQL parser available", ["promql_parser is not installed"])
        return

    def metric_problems(sel, funcs, where):
        out = []
        name = sel.name or next((m.value for m in sel.matchers.matchers if m.name == "__name__"), None)
        if not name:
            return [f"{where}: a selector without a metric name"]
        base, suffix = name, ""
        for sfx in ("_bucket", "_sum", "_count"):
            if name.endswith(sfx) and (src.get(name[:-len(sfx)]) == "histogram"):
                base, suffix = name[:-len(sfx)], sfx
        typ = src.get(base)
        if typ is None:
            return [f"{where}: {name} is not registered by any ka_metrics_* call in common/ or services/"]
        labels = None
        if docs is not None:
            if base not in docs:
                return [f"{where}: {name} is not documented in docs/operations.md"]
            if docs[base][0] != typ:
                out.append(f"{where}: {base} is a {typ} in the code, a {docs[base][0]} in docs/operations.md")
            labels = docs[base][1] | TARGET_LABELS | ({"le"} if suffix == "_bucket" else set())
        if typ == "histogram" and not suffix:
            out.append(f"{where}: {name} is a histogram: query its _bucket, _sum or _count")
        counterish = typ == "counter" or suffix
        if counterish and not COUNTER_FUNCS & set(funcs):
            out.append(f"{where}: {name} is a counter: use it inside rate()/increase(), it resets on restart")
        if not counterish and COUNTER_FUNCS & set(funcs):
            out.append(f"{where}: {name} is a gauge inside {sorted(COUNTER_FUNCS & set(funcs))}")
        if labels is not None:
            for m in getattr(sel.matchers, "matchers", []) or []:
                if m.name != "__name__" and m.name not in labels:
                    out.append(f"{where}: {name} has no label {m.name} (docs/operations.md: {sorted(labels)})")
        return out

    used = set()
    uids, titles = {}, {}
    for path in sorted(glob.glob(os.path.join(gdir, "*.json"))):
        f = os.path.basename(path)
        problems = []
        try:
            d = json.loads(read(path), object_pairs_hook=no_duplicate_keys)
        except ValueError as e:
            R.check(f"grafana: {f}", [str(e)])
            continue
        for k in ("uid", "title", "panels", "schemaVersion", "templating"):
            if k not in d:
                problems.append(f"no {k}")
        uid, title = d.get("uid", ""), d.get("title", "")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid or ""):
            problems.append(f"uid {uid!r}: 1..40 of [A-Za-z0-9_-]")
        if uid in uids:
            problems.append(f"uid {uid} also in {uids[uid]}")
        if title in titles:
            problems.append(f"title {title!r} also in {titles[title]}")
        uids[uid], titles[title] = f, f
        variables = {v.get("name"): v for v in (d.get("templating") or {}).get("list", [])}
        ds = variables.get("datasource")
        if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
            problems.append("no `datasource` variable of type datasource/prometheus (panels must not pin a uid)")
        for v in variables.values():
            if v.get("type") != "query":
                continue
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", q or "")
            if not m:
                problems.append(f"variable {v.get('name')}: query {q!r} is not label_values(metric, label)")
            elif m.group(1) not in src or (docs is not None and m.group(2) not in docs.get(m.group(1), ("", set()))[1]):
                problems.append(f"variable {v.get('name')}: {m.group(1)} has no label {m.group(2)}")
            else:
                used.add(m.group(1))
        ids, boxes, nq = set(), [], 0
        for p in d.get("panels", []):
            pid, ptitle = p.get("id"), p.get("title", "?")
            where = f"panel {pid} {ptitle!r}"
            if pid in ids:
                problems.append(f"{where}: duplicate id")
            ids.add(pid)
            g = p.get("gridPos") or {}
            if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] + g["w"] > 24 or g["w"] < 1:
                problems.append(f"{where}: gridPos {g} is not inside the 24-column grid")
            else:
                for (ox, oy, ow, oh, ot) in boxes:
                    if g["x"] < ox + ow and ox < g["x"] + g["w"] and g["y"] < oy + oh and oy < g["y"] + g["h"]:
                        problems.append(f"{where}: overlaps {ot!r}")
                boxes.append((g["x"], g["y"], g["w"], g["h"], ptitle))
            if p.get("type") == "row":
                continue
            if (p.get("datasource") or {}).get("uid") != "${datasource}":
                problems.append(f"{where}: datasource is not ${{datasource}}")
            targets = p.get("targets") or []
            if not targets:
                problems.append(f"{where}: no queries")
            refs = [t.get("refId") for t in targets]
            if len(set(refs)) != len(refs):
                problems.append(f"{where}: duplicate refId")
            for t in targets:
                tw = f"{where} query {t.get('refId')}"
                if (t.get("datasource") or {}).get("uid", "${datasource}") != "${datasource}":
                    problems.append(f"{tw}: datasource is not ${{datasource}}")
                expr = t.get("expr")
                if not expr:
                    problems.append(f"{tw}: no expr")
                    continue
                nq += 1
                try:
                    ast = promql_parser.parse(substitute_vars(expr))
                except ValueError as e:
                    problems.append(f"{tw}: PromQL does not parse: {e}: {expr}")
                    continue
                for sel, funcs in promql_selectors(ast):
                    used.add(sel.name or "")
                    problems += metric_problems(sel, funcs, tw)
                for call in promql_calls(ast):
                    if call.func.name == "histogram_quantile" and not any(
                            (sel.name or "").endswith("_bucket") for sel, _ in promql_selectors(call.args[1])):
                        problems.append(f"{tw}: histogram_quantile over no _bucket series")
        R.check(f"grafana: {f} ({title}): {len(d.get('panels', []))} panels, {nq} PromQL queries parse and "
                "use registered metrics as their types allow", problems)
    if docs:
        unused = sorted(n for n in docs if not any(u == n or u.startswith(n + "_") for u in used))
        if unused:
            R.note(f"documented metrics on no dashboard: {', '.join(unused)}")


# --- main ---------------------------------------------------------------------------

KEYS_FROM = [""]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--rendered", required=True, help="kubectl kustomize deploy/k8s output")
    ap.add_argument("--compose-json", help="composecheck's normalized project")
    ap.add_argument("--kactl")
    ap.add_argument("--binary", action="append", default=[])
    a = ap.parse_args()
    root = os.path.abspath(a.root)

    wk = workers(root)
    keys, KEYS_FROM[0] = config_keys(root, a.kactl)
    tops = topics(root)
    R.check(f"{len(wk)} workers found ({', '.join(sorted(wk))}), {len(keys)} configuration keys "
            f"from {KEYS_FROM[0]}, {len(tops)} topics",
            [] if wk and keys and tops else ["workers, configuration keys or topics not found"])

    check_well_formed(root)
    dep = deployed(root, wk)
    check_k8s(root, a.rendered, dep, keys, a.kactl, tops)
    if a.compose_json:
        project = json.loads(read(a.compose_json))
    else:
        R.note("no composecheck output: deploy/compose.yaml is read as plain YAML (merge keys resolved, "
               "no interpolation)")
        project = normalize_compose(yaml.safe_load(read(os.path.join(root, "deploy/compose.yaml"))),
                                    os.path.join(root, "deploy"))
    check_compose(root, project, dep, keys, a.kactl, tops)
    check_alertmanager(project, a.rendered)
    check_dockerfile(root, wk, a.binary)
    check_dashboards(root)

    print(f"checks: {R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
