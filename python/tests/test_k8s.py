"""infra/k8s: the kustomize overlays render with `kubectl kustomize`, and the rendered objects are
what docs/deployment.md promises (probes on /health, non-root, resources from `bitnet doctor`,
selectors that match, an HPA on the queue metric, a PDB, the GPU overlay's device request, the
batch Job). YAML is read by Debian's python3-yaml through /usr/bin/python3 (the runtime scripts
themselves stay standard-library only)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from helpers import ROOT

K8S = os.path.join(ROOT, "infra", "k8s")
sys.path.insert(0, K8S)
import resources  # noqa: E402

TO_JSON = "import sys, json, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)"


def render(path):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise AssertionError("kubectl is missing: scripts/setup.sh --asan installs kubernetes-client")
    out = subprocess.run([kubectl, "kustomize", path], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise AssertionError("kubectl kustomize %s failed: %s" % (path, out.stderr))
    docs = subprocess.run(["/usr/bin/python3", "-c", TO_JSON], input=out.stdout, capture_output=True, text=True)
    if docs.returncode != 0:
        raise AssertionError("YAML → JSON failed: " + docs.stderr)
    return {(d["kind"], d["metadata"]["name"]): d for d in json.loads(docs.stdout)}


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


class Overlays(unittest.TestCase):
    def check_server(self, objs, tag):
        kinds = sorted(k for k, _ in objs)
        self.assertEqual(kinds, ["Deployment", "HorizontalPodAutoscaler", "PersistentVolumeClaim",
                                 "PodDisruptionBudget", "Service"])
        dep = objs[("Deployment", "bitnet-server")]
        pod = dep["spec"]["template"]
        labels = pod["metadata"]["labels"]
        for selector in (dep["spec"]["selector"]["matchLabels"], objs[("Service", "bitnet-server")]["spec"]["selector"],
                         objs[("PodDisruptionBudget", "bitnet-server")]["spec"]["selector"]["matchLabels"]):
            self.assertTrue(selector)
            for k, v in selector.items():
                self.assertEqual(labels.get(k), v, "a selector that matches no pod: %s=%s" % (k, v))
        c = pod["spec"]["containers"][0]
        self.assertEqual(c["image"], "bitnet-cpp/bitnet:" + tag)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            self.assertEqual(c[probe]["httpGet"]["path"], "/health", probe)
            self.assertEqual(c[probe]["httpGet"]["port"], "http", probe)
        self.assertEqual(c["ports"][0]["containerPort"], 8080)
        env = env_of(c)
        self.assertEqual(env["LLAMA_ARG_PORT"], "8080")
        self.assertEqual(env["LLAMA_ARG_HOST"], "0.0.0.0")
        self.assertEqual(env["LLAMA_ARG_METRICS"], "1", "the HPA's metric comes from /metrics")
        self.assertTrue(pod["spec"]["securityContext"]["runAsNonRoot"])
        self.assertFalse(c["securityContext"]["allowPrivilegeEscalation"])
        self.assertIn("memory", c["resources"]["limits"])
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        self.assertTrue(mounts["models"]["readOnly"])
        vols = {v["name"]: v for v in pod["spec"]["volumes"]}
        self.assertEqual(vols["models"]["persistentVolumeClaim"]["claimName"], "bitnet-models")
        self.assertIn(("PersistentVolumeClaim", "bitnet-models"), objs)
        hpa = objs[("HorizontalPodAutoscaler", "bitnet-server")]
        self.assertEqual(hpa["spec"]["scaleTargetRef"], {"apiVersion": "apps/v1", "kind": "Deployment",
                                                         "name": "bitnet-server"})
        metric_names = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
        self.assertEqual(metric_names, ["bitnet_queue_length"])
        self.assertLessEqual(hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"])
        self.assertGreaterEqual(dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 15,
                                "longer than the server's 10-s shutdown grace")
        return c, pod

    def test_cpu_overlay(self):
        c, _ = self.check_server(render(os.path.join(K8S, "overlays", "cpu")), "cpu")
        # The checked-in patch is what resources.py makes of the default model's doctor report.
        self.assertEqual(c["resources"]["requests"]["cpu"], env_of(c)["LLAMA_ARG_THREADS"])
        self.assertRegex(c["resources"]["requests"]["memory"], r"^[0-9]+Mi$")
        self.assertNotIn("nvidia.com/gpu", c["resources"]["limits"])

    def test_gpu_overlay(self):
        c, pod = self.check_server(render(os.path.join(K8S, "overlays", "gpu")), "cuda")
        self.assertEqual(c["resources"]["limits"]["nvidia.com/gpu"], 1)
        self.assertEqual(env_of(c)["LLAMA_ARG_GPU_LAYERS"], "99")
        self.assertEqual(pod["spec"]["tolerations"][0]["key"], "nvidia.com/gpu")

    def test_batch_job(self):
        objs = render(os.path.join(K8S, "batch"))
        self.assertEqual(list(objs), [("Job", "bitnet-batch")])
        spec = objs[("Job", "bitnet-batch")]["spec"]["template"]["spec"]
        self.assertEqual(spec["restartPolicy"], "Never")
        c = spec["containers"][0]
        self.assertEqual(c["command"], ["bitnet", "run"])
        self.assertIn("/models/model.gguf", c["args"])


class ResourcesFromDoctor(unittest.TestCase):
    REPORT = {"schema": "bitnet.doctor", "cpu": {"threads": 4},
              "memory": {"required_bytes": 800 * (1 << 20)}}

    def test_headroom_and_threads(self):
        r = resources.resources_from_doctor(self.REPORT)
        self.assertEqual(r, {"cpu": "4", "memory_request": "1000Mi", "memory_limit": "1200Mi"})
        self.assertEqual(resources.resources_from_doctor(self.REPORT, threads=2)["cpu"], "2")

    def test_cli_writes_a_patch_and_refuses_bad_reports(self):
        with tempfile.TemporaryDirectory() as d:
            good, bad = os.path.join(d, "good.json"), os.path.join(d, "bad.json")
            with open(good, "w") as f:
                json.dump(self.REPORT, f)
            with open(bad, "w") as f:
                json.dump({"schema": "bitnet.doctor", "memory": {}}, f)
            script = os.path.join(K8S, "resources.py")
            out = subprocess.run([sys.executable, script, "--doctor-json", good], capture_output=True, text=True)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("memory: 1000Mi", out.stdout)
            self.assertIn("kind: Deployment", out.stdout)
            out = subprocess.run([sys.executable, script, "--doctor-json", bad], capture_output=True, text=True)
            self.assertEqual(out.returncode, 1)
            self.assertIn("no memory estimate", out.stderr)


if __name__ == "__main__":
    unittest.main()
