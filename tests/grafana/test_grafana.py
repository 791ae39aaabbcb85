#!/usr/bin/env python3
"""Checks grafana/ without a Grafana server.

- Every provisioning file and dashboard validates against its JSON Schema (tests/grafana/schemas).
- Cross references: datasource uids and names are unique over every file of
  grafana/provisioning/datasources/ (other files there, such as anorak-direct.yaml, take part); every
  datasourceUid / targetUID resolves to a datasource of the right type; "$" is escaped as "$$".
- Dashboards: uids unique; every panel, query and query variable uses a provisioned datasource,
  directly or through a datasource variable of the same plugin type whose default is provisioned;
  every $variable a query uses is declared; PromQL parses (promtool check rules).
- Data links: every link to a dashboard names an existing dashboard, carries every label variable
  that dashboard declares from the series' label of the same name, the time range, and the source
  query aggregates by those labels.
- Every anorak_* metric the dashboards query is one the exporter writes.

Needs python3-yaml, python3-jsonschema and promtool; under CI=true a missing one fails the test.
ANORAK_SOURCE_DIR points at the tree to check (default: this checkout).
"""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

SRC = os.environ.get("ANORAK_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SCHEMAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas")
PROFILE_TYPE = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
OFFCPU_PROFILE_TYPE = "process_offcpu:offcpu:nanoseconds:offcpu:nanoseconds"
PYROSCOPE = "grafana-pyroscope-datasource"
# Grafana's own variables.
BUILTIN_VARS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__all",
                "__url_time_range", "__tags", "__field", "__data", "__series", "__value"}

try:
    import yaml
except ImportError:
    yaml = None
try:
    import jsonschema
except ImportError:
    jsonschema = None


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def load_schema(name):
    with open(os.path.join(SCHEMAS, name)) as f:
        return json.load(f)


def walk(obj, path=""):
    """Yields (path, key, value) for every mapping entry in a nested structure."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield path, k, v
            yield from walk(v, "%s.%s" % (path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from walk(v, "%s[%d]" % (path, i))


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def var_ref(s):
    """'${name}' or '$name' -> name, else None."""
    m = re.fullmatch(r"\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z0-9_]+)", s)
    return (m.group(1) or m.group(2)) if m else None


def query_texts(target):
    """The strings of a query that Grafana interpolates."""
    out = []
    for k in ("expr", "labelSelector", "query"):
        v = target.get(k)
        if isinstance(v, str):
            out.append(v)
    return out


def used_vars(text):
    return {m.group(1) or m.group(2) for m in re.finditer(r"\$\{([A-Za-z0-9_]+)[^}]*\}|\$([A-Za-z_][A-Za-z0-9_]*)", text)}


def grouping_labels(expr):
    """Labels of the outermost 'by (...)' clauses of a PromQL expression."""
    return {l.strip() for g in re.findall(r"\bby\s*\(([^)]*)\)", expr) for l in g.split(",") if l.strip()}


def source_metric_names():
    names = set()
    for f in (glob.glob(os.path.join(SRC, "exporter", "**", "*.c"), recursive=True) +
              glob.glob(os.path.join(SRC, "labels", "*.c")) + glob.glob(os.path.join(SRC, "common", "*.c"))):
        with open(f) as fh:
            text = fh.read()
        names.update(re.findall(r'"(anorak_[a-z0-9_]+)"', text))
    return names


class Grafana(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require(yaml is not None, "python3-yaml is not installed")
        harness.require(jsonschema is not None, "python3-jsonschema is not installed")
        cls.ds_files = sorted(glob.glob(os.path.join(SRC, "grafana", "provisioning", "datasources", "*.yaml")))
        cls.provider_files = sorted(glob.glob(os.path.join(SRC, "grafana", "provisioning", "dashboards", "*.yaml")))
        cls.dash_files = sorted(glob.glob(os.path.join(SRC, "grafana", "dashboards", "*.json")))
        if not cls.ds_files or not cls.provider_files or not cls.dash_files:
            raise AssertionError("grafana/ provisioning or dashboards missing under " + SRC)
        cls.datasources = {}  # uid -> (type, file)
        names = {}
        cls.ds_docs = {}
        for f in cls.ds_files:
            doc = load_yaml(f)
            cls.ds_docs[f] = doc
            for ds in doc.get("datasources", []) if isinstance(doc, dict) else []:
                uid, name = ds.get("uid"), ds.get("name")
                if uid in cls.datasources:
                    raise AssertionError("datasource uid %r in both %s and %s" % (uid, cls.datasources[uid][1], f))
                if name in names:
                    raise AssertionError("datasource name %r in both %s and %s" % (name, names[name], f))
                cls.datasources[uid] = (ds.get("type"), f)
                names[name] = f
        cls.dashboards = {}
        for f in cls.dash_files:
            with open(f) as fh:
                d = json.load(fh)
            if d.get("uid") in cls.dashboards:
                raise AssertionError("dashboard uid %r in two files" % d.get("uid"))
            cls.dashboards[d.get("uid")] = (d, f)

    # --- schemas -------------------------------------------------------------------------------------

    def validate(self, schema_name, doc, what):
        schema = load_schema(schema_name)
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        errors = sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.absolute_path))
        self.assertEqual([], ["%s: %s at %s" % (what, e.message, "/".join(map(str, e.absolute_path)))
                              for e in errors])

    def test_schema_datasources(self):
        for f, doc in self.ds_docs.items():
            self.validate("datasources.schema.json", doc, f)

    def test_schema_dashboard_providers(self):
        for f in self.provider_files:
            self.validate("dashboard-providers.schema.json", load_yaml(f), f)

    def test_schema_dashboards(self):
        for uid, (d, f) in self.dashboards.items():
            self.validate("dashboard.schema.json", d, f)

    def test_schema_rejects_a_broken_file(self):
        """The schema is not vacuous: a correlation without description and a bad uid are refused."""
        doc = json.loads(json.dumps(self.ds_docs[self.ds_files[0]]))
        for ds in doc["datasources"]:
            for c in ds.get("correlations", []):
                del c["description"]
        doc["datasources"][0]["uid"] = "has space"
        schema = load_schema("datasources.schema.json")
        errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(doc))
        self.assertGreaterEqual(len(errors), 1)

    # --- provisioning cross references ---------------------------------------------------------------

    def test_dollar_escaped(self):
        """Grafana expands $VAR and ${VAR} in provisioning files from the environment: a literal $ is $$."""
        for f in self.ds_files + self.provider_files:
            with open(f) as fh:
                text = "\n".join(l for l in fh.read().splitlines() if not l.lstrip().startswith("#"))
            stray = re.findall(r".{0,20}\$.{0,20}", text.replace("$$", ""))
            self.assertEqual([], stray, "%s: unescaped $ (write $$)" % f)

    def test_datasource_uids_resolve(self):
        want = {"tracesToProfiles": PYROSCOPE, "tracesToMetrics": "prometheus", "serviceMap": "prometheus",
                "exemplarTraceIdDestinations": "tempo"}
        seen = 0
        for f, doc in self.ds_docs.items():
            for ds in doc["datasources"]:
                for path, key, value in walk(ds.get("jsonData", {}), ds["name"] + ".jsonData"):
                    if key != "datasourceUid":
                        continue
                    seen += 1
                    self.assertIn(value, self.datasources, "%s: %s.datasourceUid %r is not provisioned" % (f, path, value))
                    for section, typ in want.items():
                        if section in path:
                            self.assertEqual(typ, self.datasources[value][0], "%s: %s points at a %s datasource"
                                             % (f, path, self.datasources[value][0]))
                for c in ds.get("correlations", []):
                    seen += 1
                    self.assertIn(c["targetUID"], self.datasources, "%s: correlation %r targets unknown uid %r"
                                  % (f, c["label"], c["targetUID"]))
                    target = c["config"]["target"]
                    if "profileTypeId" in target:
                        self.assertEqual(PYROSCOPE, self.datasources[c["targetUID"]][0])
                        self.assertEqual(PROFILE_TYPE, target["profileTypeId"])
        self.assertGreater(seen, 0, "no datasourceUid or targetUID found: nothing was checked")

    def test_traces_to_profiles(self):
        found = False
        for doc in self.ds_docs.values():
            for ds in doc["datasources"]:
                t2p = ds.get("jsonData", {}).get("tracesToProfiles")
                if ds["type"] != "tempo" or not t2p:
                    continue
                found = True
                self.assertEqual(PROFILE_TYPE, t2p["profileTypeId"])
                # Tag values are profile label names: they must be labels anorak's samples carry.
                labels = self.sample_labels()
                for tag in t2p["tags"]:
                    self.assertIn(tag.get("value") or tag["key"], labels, "tracesToProfiles tag %r" % tag)
        self.assertTrue(found, "no Tempo datasource with tracesToProfiles")

    def sample_labels(self):
        with open(os.path.join(SRC, "integrations", "prometheus", "pod-labels.yml")) as f:
            cfg = yaml.safe_load(f)
        return {r["target_label"] for r in cfg["relabel_configs"]
                if r.get("target_label") and not r["target_label"].startswith("__")} | {"job", "instance"}

    # --- dashboards ----------------------------------------------------------------------------------

    def check_ds_ref(self, ref, variables, where):
        """ref is {type, uid}: a provisioned uid of that type, or a datasource variable of that type."""
        name = var_ref(ref["uid"])
        if name is None:
            self.assertIn(ref["uid"], self.datasources, "%s: datasource uid %r is not provisioned" % (where, ref["uid"]))
            self.assertEqual(ref["type"], self.datasources[ref["uid"]][0], where)
            return
        v = variables.get(name)
        self.assertIsNotNone(v, "%s: datasource variable $%s is not declared" % (where, name))
        self.assertEqual("datasource", v["type"], "%s: $%s is not a datasource variable" % (where, name))
        self.assertEqual(ref["type"], v["query"], "%s: $%s lists %s datasources, the panel wants %s"
                         % (where, name, v["query"], ref["type"]))
        default = v["current"]["value"]
        self.assertIn(default, self.datasources, "%s: $%s defaults to unprovisioned uid %r" % (where, name, default))
        self.assertEqual(v["query"], self.datasources[default][0], "%s: $%s default has the wrong type" % (where, name))

    def test_panels_use_provisioned_datasources(self):
        checked = 0
        for uid, (d, f) in self.dashboards.items():
            variables = {v["name"]: v for v in d["templating"]["list"]}
            for v in variables.values():
                if v["type"] == "query":
                    self.check_ds_ref(v["datasource"], variables, "%s variable %s" % (f, v["name"]))
            for p in all_panels(d["panels"]):
                if p["type"] == "row":
                    continue
                where = "%s panel %r" % (f, p["title"])
                self.check_ds_ref(p["datasource"], variables, where)
                checked += 1
                for t in p["targets"]:
                    if "datasource" in t:
                        self.assertEqual(p["datasource"], t["datasource"], where + " query " + t["refId"])
        self.assertGreater(checked, 0)

    def test_query_variables_declared(self):
        for uid, (d, f) in self.dashboards.items():
            declared = {v["name"] for v in d["templating"]["list"]} | BUILTIN_VARS
            texts = []
            for v in d["templating"]["list"]:
                if v["type"] == "query":
                    q = v["query"]
                    texts.append(q if isinstance(q, str) else json.dumps(q))
            for p in all_panels(d["panels"]):
                for t in p.get("targets", []):
                    texts.extend(query_texts(t))
            for text in texts:
                self.assertEqual(set(), used_vars(text) - declared, "%s: undeclared variable in %s" % (f, text))

    def test_profile_queries(self):
        """Profile panels query anorak's CPU (or off-CPU) profile type, filtered by every label variable."""
        d, f = self.dashboards["anorak-profiles"]
        label_vars = [v["name"] for v in d["templating"]["list"] if v["type"] in ("query", "custom", "textbox")]
        self.assertTrue({"namespace", "pod", "container"} <= set(label_vars), label_vars)
        flame = 0
        for p in all_panels(d["panels"]):
            for t in p.get("targets", []):
                self.assertTrue(t["profileTypeId"].startswith((PROFILE_TYPE, OFFCPU_PROFILE_TYPE)),
                                t["profileTypeId"])
                for name in label_vars:
                    self.assertRegex(t["labelSelector"], r'\b%s=~?"\$%s"' % (name, name), f)
            flame += p["type"] == "flamegraph"
        self.assertGreaterEqual(flame, 1, "no flamegraph panel")

    def test_data_links(self):
        links = 0
        for uid, (d, f) in self.dashboards.items():
            for p in all_panels(d["panels"]):
                for link in p.get("fieldConfig", {}).get("defaults", {}).get("links", []):
                    links += 1
                    self.check_link(link, p, f)
        self.assertGreater(links, 0, "no data links")

    def check_link(self, link, panel, f):
        where = "%s panel %r link %r" % (f, panel["title"], link["title"])
        url = urllib.parse.urlsplit(link["url"])
        m = re.fullmatch(r"/d/([A-Za-z0-9_-]+)(/[A-Za-z0-9_-]*)?", url.path)
        self.assertIsNotNone(m, where + ": not a dashboard link")
        target = self.dashboards.get(m.group(1))
        self.assertIsNotNone(target, "%s: no dashboard with uid %r" % (where, m.group(1)))
        self.assertIn("${__url_time_range}", url.query, where + ": does not keep the time range")
        params = dict(p.split("=", 1) for p in url.query.split("&") if "=" in p)
        label_vars = [v["name"] for v in target[0]["templating"]["list"] if v["type"] in ("query", "custom", "textbox")]
        self.assertTrue(label_vars, where + ": target declares no label variable")
        exprs = [t.get("expr", "") for t in panel["targets"]]
        for name in label_vars:
            value = params.get("var-" + name)
            self.assertIsNotNone(value, "%s: misses var-%s" % (where, name))
            # The value is the series' (or table row's) label of the same name: labels are identical.
            self.assertIn(value, ("${__field.labels.%s}" % name, "${__data.fields.%s}" % name),
                          "%s: var-%s=%s" % (where, name, value))
            for e in exprs:
                self.assertIn(name, grouping_labels(e), "%s: the query does not keep label %s: %s" % (where, name, e))

    def test_metric_names_exist(self):
        known = source_metric_names()
        self.assertIn("anorak_samples_total", known, "metric names not found in the source")
        used = set()
        for uid, (d, f) in self.dashboards.items():
            for p in all_panels(d["panels"]):
                for t in p.get("targets", []):
                    used.update(re.findall(r"\b(anorak_[a-z0-9_]+)", t.get("expr", "")))
        self.assertTrue(used, "the dashboards query no anorak_ metric")
        unknown = sorted(n for n in used
                         if re.sub(r"_(bucket|sum|count)$", "", n) not in known)
        self.assertEqual([], unknown, "metrics the exporter does not write")

    def test_promql_parses(self):
        promtool = harness.require_tool("promtool")
        subst = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m"}
        rules = []
        for uid, (d, f) in self.dashboards.items():
            for p in all_panels(d["panels"]):
                for t in p.get("targets", []):
                    if "expr" not in t:
                        continue
                    e = t["expr"]
                    for k, v in subst.items():
                        e = e.replace(k, v)
                    e = re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", ".*", e)
                    rules.append({"record": "anorak:check:%d" % len(rules), "expr": e})
        self.assertTrue(rules)
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
            yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, fh)
        try:
            r = subprocess.run([promtool, "check", "rules", fh.name], capture_output=True, text=True, timeout=60)
        finally:
            os.unlink(fh.name)
        self.assertEqual(0, r.returncode, r.stdout + r.stderr)


if __name__ == "__main__":
    harness.main(total_timeout=120)
