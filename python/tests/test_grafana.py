"""infra/grafana/bitnet-server.json: a well-formed Grafana dashboard whose every query reads
metrics the server really exposes (names taken from src/server/metrics.cpp), with unique panel
ids, non-overlapping positions on the 24-column grid, and the Prometheus data source as an input."""

import json
import os
import re
import unittest

from helpers import ROOT

DASHBOARD = os.path.join(ROOT, "infra", "grafana", "bitnet-server.json")
METRICS_SRC = os.path.join(ROOT, "src", "server", "metrics.cpp")
PROMQL_WORDS = {"sum", "by", "rate", "histogram_quantile", "le", "instance", "job", "label_values"}


def exposed_metrics():
    src = open(METRICS_SRC).read()
    names = set(re.findall(r'"((?:bitnet|process)_[a-z_]+)"', src))
    histograms = set(re.findall(r'\.render\(out, "([a-z_]+)"', src))
    self_names = names | {h + suffix for h in histograms for suffix in ("_bucket", "_sum", "_count")}
    return self_names


class GrafanaDashboard(unittest.TestCase):
    def setUp(self):
        with open(DASHBOARD) as f:
            self.d = json.load(f)

    def test_structure(self):
        self.assertEqual(self.d["uid"], "bitnet-server")
        self.assertEqual(self.d["__inputs"][0]["pluginId"], "prometheus")
        ids = [p["id"] for p in self.d["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        cells = set()
        for p in self.d["panels"]:
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    self.assertNotIn((x, y), cells, "panels overlap at %s (%s)" % ((x, y), p["title"]))
                    cells.add((x, y))
            self.assertTrue(p["targets"], p["title"])
            for t in p["targets"]:
                self.assertEqual(t["datasource"]["uid"], "${DS_PROMETHEUS}")

    def test_queries_read_exposed_metrics(self):
        exposed = exposed_metrics()
        self.assertIn("bitnet_queue_length", exposed)
        self.assertIn("bitnet_time_to_first_token_seconds_bucket", exposed)
        exprs = [t["expr"] for p in self.d["panels"] for t in p["targets"]]
        exprs += [v["query"] for v in self.d["templating"]["list"]]
        used = set()
        for e in exprs:
            self.assertEqual(e.count("("), e.count(")"), e)
            for word in re.findall(r"\b([a-z_]+)\b(?!\s*=)", re.sub(r'"[^"]*"|\$\w+', "", e)):
                if word not in PROMQL_WORDS:
                    used.add(word)
        self.assertEqual(used - exposed, set(), "queries name metrics the server does not expose")
        # Every gauge/counter of the server is on the dashboard somewhere.
        plain = {m for m in exposed if not m.endswith(("_bucket", "_sum", "_count"))}
        histos = {m[:-len("_bucket")] for m in exposed if m.endswith("_bucket")}
        self.assertEqual(plain - used - histos, set(), "metrics without a panel")


if __name__ == "__main__":
    unittest.main()
