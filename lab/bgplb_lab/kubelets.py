"""The lab on real nodes: the way users run bgplb.

The same fabric, ToRs and client as the process-level lab (topology.py), but:

- apiserver host .250: etcd, kube-apiserver, kube-controller-manager, kube-scheduler;
- n1-n4: each a real node (nodes.py) with containerd, kubelet and kube-proxy, Pods on
  a /28 of 203.0.113.128/25; n1-n3 are control-plane nodes (label and taint);
- images built here (images.py) and imported into every node's containerd;
- the control-plane VIP 203.0.113.8 served from boot by the `bgpadvertiser` static
  Pods that `bgplb static-pod` writes into each control-plane node's
  /etc/kubernetes/manifests; every kubelet and kube-proxy reaches the API server
  through that VIP, and so do Pods (the `kubernetes` Service's endpoint is the VIP);
- bgplb itself installed with `helm install` from charts/bgplb, with the seed's
  example as values; a demo Deployment of backend Pods behind a LoadBalancer Service.

The lab's control-plane nodes have no kube-apiserver of their own: each forwards the
VIP's ports to the one on .250 (socat), standing in for its local API server, and
that forward is what the static Pod's /readyz probe sees.
"""

from __future__ import annotations

import concurrent.futures
import json
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import yaml

from bgplb_lab.cluster import ControlPlane
from bgplb_lab.daemons import wait_for
from bgplb_lab.images import Builder, Image
from bgplb_lab.kube import ROOT, KubeAPI, kube_binary
from bgplb_lab.manifests import NAMESPACE
from bgplb_lab.netns import cleanup_prefix, run
from bgplb_lab.nodes import KubeNode, NodeConfig, read_sysctls, remove_cgroup_root, restore_sysctls
from bgplb_lab.topology import (
    API_PORT,
    APISERVER_IP,
    CONTROL_PLANE_LABEL,
    CONTROL_PLANE_VIP,
    FRR_IP,
    NODES,
    Lab,
    NodeSpec,
    demo_service,
    example_config,
)

CLUSTER_CIDR = IPv4Network("203.0.113.128/25")
POD_CIDRS = dict(zip((n.name for n in NODES), CLUSTER_CIDR.subnets(new_prefix=28), strict=False))
VIP_PORT = 443
BACKEND_PORT = 8080


def chart_values(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The seed's example objects as the chart's values (its default configuration)."""
    values: dict[str, Any] = {"peers": []}
    for obj in objects:
        kind, spec = obj["kind"], obj["spec"]
        if kind == "BGPLoadBalancer":
            values |= {k: v for k, v in spec.items() if k != "loadBalancerNodeSelector"}
        elif kind == "NetworkGatewayGroup":
            values["floatingIPs"] = spec["floatingIPs"]
        elif kind == "BGPPeer":
            labels = obj["metadata"].get("labels") or {}
            values["peers"].append({"name": obj["metadata"]["name"], "labels": labels, **spec})
    return values


BACKEND_RESOURCES = {"requests": {"cpu": "100m", "memory": "32Mi"}}
"""The demo backend asks for CPU, as a real workload does. Without a request it is
BestEffort: cpu.shares 2 against its node's Burstable Pods, and when bgplb's webhook or
controller Pods on the same node started or re-listed, it stopped answering for up to
1.5 s (drills on the lab: one node's backend silent, then answering in 0.1-0.5 s, while
the other nodes' answered in a few ms)."""


def backend(image: str, replicas: int = 4) -> list[dict[str, Any]]:
    """The demo Service's Pods: spread over every node, control-plane ones included."""
    labels = {"app": "demo"}
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "demo", "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "tolerations": [
                            {
                                "key": CONTROL_PLANE_LABEL,
                                "operator": "Exists",
                                "effect": "NoSchedule",
                            }
                        ],
                        "topologySpreadConstraints": [
                            {
                                "maxSkew": 1,
                                "topologyKey": "kubernetes.io/hostname",
                                "whenUnsatisfiable": "ScheduleAnyway",
                                "labelSelector": {"matchLabels": labels},
                            }
                        ],
                        "containers": [
                            {
                                "name": "backend",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "env": env,
                                "ports": [{"containerPort": BACKEND_PORT}],
                                "resources": BACKEND_RESOURCES,
                                "readinessProbe": {
                                    "httpGet": {"path": "/", "port": BACKEND_PORT},
                                    "periodSeconds": 1,
                                },
                            }
                        ],
                    },
                },
            },
        },
        demo_service()
        | {
            "spec": {
                "type": "LoadBalancer",
                "selector": labels,
                "ports": [{"port": 80, "targetPort": BACKEND_PORT}],
            }
        },
    ]


@dataclass
class KubeletLab(Lab):
    """`bgplb-lab up`: the lab with real kubelets, images and the Helm chart."""

    images: list[Image] = field(default_factory=list, init=False)
    control: ControlPlane | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.api = KubeAPI(
            self.workdir / "kube",
            host=APISERVER_IP,
            port=API_PORT,
            netns=self.netns("apiserver"),
            extra_sans=(CONTROL_PLANE_VIP,),
            extra_args=[
                # The `kubernetes` Service points at the VIP: Pods reach the API server
                # the way kubelets do.
                f"--advertise-address={CONTROL_PLANE_VIP}",
                # Admission webhooks are called on their Pods' addresses.
                "--enable-aggregator-routing=true",
            ],
        )

    # --- where things are --------------------------------------------------------

    @property
    def cgroup_prefix(self) -> str:
        return self.prefix.rstrip("-") + "-"

    def kube_node(self, name: str) -> KubeNode:
        spec = self.node(name)
        config = NodeConfig(
            name=name,
            ip=spec.ip,
            netns=self.netns(name),
            pod_cidr=POD_CIDRS[name],
            cluster_cidr=CLUSTER_CIDR,
            server=f"https://{CONTROL_PLANE_VIP}:{VIP_PORT}",
            cgroup_root=f"{self.cgroup_prefix}{name}",
            control_plane=spec.control_plane,
        )
        return KubeNode(config, self.workdir / "nodes" / name, kube_binary("kubelet").parent)

    # --- up / down ---------------------------------------------------------------

    def saved_state(self) -> dict[str, Any]:
        # kubelet changes machine-wide sysctls: `down` puts these back.
        return super().saved_state() | {"kubelets": True, "sysctls": read_sysctls()}

    def _build(self) -> None:
        self.say("images: bgplb controller and agent (the Dockerfile), backend, pause")
        self.images = Builder(log=self.workdir / "images.log").all()
        _, controller, agent, backend_image = self.images
        for binary in ("kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler"):
            kube_binary(binary)
        fabric = self._network()
        fabric.add_host("apiserver", f"{APISERVER_IP}/24")
        api_host = self.host("apiserver", APISERVER_IP)
        for node in NODES:  # webhooks are called on their Pods' addresses
            api_host.exec("ip", "route", "add", str(POD_CIDRS[node.name]), "via", node.ip)
        self.say(f"kube-apiserver on {APISERVER_IP}:{API_PORT}, controller-manager, scheduler")
        self.api.start()
        self.control = ControlPlane(self.api, str(CLUSTER_CIDR)).start()
        lb_manifest = self.workdir / "bgploadbalancer.yaml"
        lb_manifest.write_text(yaml.safe_dump(example_config(self.example, self.bfd)[0]))
        nodes = []
        for node in NODES:
            fabric.add_host(node.name, f"{node.ip}/24")
            nodes.append(self._prepare_node(node, lb_manifest, agent))
        self.say("images into every node's containerd")
        with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(lambda n: self._boot_node(n, self.images), nodes))
        self.say(f"kubelets up; waiting for nodes (API server through the VIP {CONTROL_PLANE_VIP})")
        wait_for("every node registered", self._all_registered, timeout=120, every=0.5)
        for node in NODES:
            if node.control_plane:  # as kubeadm does: the kubelet may not set node-role labels
                self.kubectl("label", "node", node.name, f"{CONTROL_PLANE_LABEL}=", "--overwrite")
        wait_for("every node Ready", self._all_ready, timeout=120, every=0.5)
        self.say("helm install bgplb charts/bgplb")
        self.helm_install(controller, agent)
        self.apply(backend(backend_image.name))

    def _prepare_node(self, spec: NodeSpec, lb_manifest: Path, agent: Image) -> KubeNode:
        host = self.host(spec.name, spec.ip)
        self._routes(spec)
        # Routers forward; kube-proxy's DNAT to Pods on other nodes needs it.
        host.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
        node = self.kube_node(spec.name)
        kubelet = self.api.client_credentials(f"system:node:{spec.name}", "system:nodes")
        proxy = self.api.client_credentials("system:kube-proxy")
        node.write_files(self.api.workdir / "ca.crt", kubelet, proxy)
        if spec.control_plane:
            self._api_front(spec)
            manifests = node.dir / "root" / "etc" / "kubernetes" / "manifests"
            subprocess.run(
                [
                    sys.executable, "-m", "bgplb.cli", "static-pod",
                    "--config", str(lb_manifest), "--node-ip", spec.ip,
                    "--image", agent.name, "--output", str(manifests / "bgpadvertiser.yaml"),
                ],
                check=True,
            )  # fmt: skip
        return node

    def _routes(self, spec: NodeSpec) -> None:
        """Default via the FRR ToR; every other node's Pods via that node."""
        host = self.host(spec.name, spec.ip)
        host.exec("ip", "route", "replace", "default", "via", FRR_IP)
        for other in NODES:
            if other.name != spec.name:
                host.exec("ip", "route", "replace", str(POD_CIDRS[other.name]), "via", other.ip)

    def _api_front(self, spec: NodeSpec) -> None:
        """This control-plane node's stand-in for a local kube-apiserver: the VIP on
        loopback (as the API server would bind it) and its ports forwarded to .250."""
        host = self.host(spec.name, spec.ip)
        host.exec("ip", "addr", "add", f"{CONTROL_PLANE_VIP}/32", "dev", "lo")
        upstream = f"TCP:{APISERVER_IP}:{API_PORT}"
        for listen in (f"TCP-LISTEN:{VIP_PORT},bind={CONTROL_PLANE_VIP}", f"TCP-LISTEN:{API_PORT}"):
            self._popen(
                spec.name,
                ["socat", f"{listen},fork,reuseaddr", upstream],
                f"apiserver-front-{spec.name}.log",
            )

    def _boot_node(self, node: KubeNode, images: list[Image]) -> None:
        node.start_holder()
        node.start_containerd()
        pause, controller, agent, backend_image = images
        # The controller and webhook do not tolerate the control-plane taint.
        wanted = [pause, agent, backend_image]
        if not node.config.control_plane:
            wanted.append(controller)
        for image in wanted:
            node.import_image(image.archive)
        node.start_kubelet()
        node.start_kube_proxy()

    def _nodes(self) -> list[dict[str, Any]]:
        return list(json.loads(self.kubectl("get", "nodes", "-o", "json"))["items"])

    def _all_registered(self) -> bool:
        return len(self._nodes()) == len(NODES)

    def _all_ready(self) -> bool:
        def ready(node: dict[str, Any]) -> bool:
            conditions = node.get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        return all(ready(n) for n in self._nodes())

    def helm_values(self, controller: Image, agent: Image) -> dict[str, Any]:
        return chart_values(example_config(self.example, self.bfd)) | {
            "image": {
                "repository": controller.repository,
                "tag": controller.tag,
                "pullPolicy": "Never",
            },
            "agentImage": {"repository": agent.repository, "tag": agent.tag, "pullPolicy": "Never"},
            "controller": {"leaseExpiry": self.lease_expiry},
            "agent": {"mesh": self.mesh},
        }

    def helm_install(self, controller: Image, agent: Image) -> None:
        values = self.workdir / "values.yaml"
        values.write_text(yaml.safe_dump(self.helm_values(controller, agent)))
        helm = subprocess.run(
            ["bash", str(ROOT / "scripts" / "install-helm.sh")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        run(
            "ip", "netns", "exec", self.api.netns or "", helm,
            f"--kubeconfig={self.api.kubeconfig}",
            "install", "bgplb", str(ROOT / "charts" / "bgplb"),
            "-n", NAMESPACE, "-f", str(values), "--wait", "--timeout", "5m",
            timeout=330,
        )  # fmt: skip

    def stop(self) -> None:
        """Nodes (their Pods, mounts and cgroups), namespaces and processes gone; the
        machine's sysctls as they were; the lab's files (logs) kept."""
        saved: dict[str, str] = {}
        state = self.workdir / "lab.json"
        if state.exists():
            saved = json.loads(state.read_text()).get("sysctls", {})
        for node in NODES:
            kube_node = self.kube_node(node.name)
            if (kube_node.dir / "holder.pid").exists():
                kube_node.kill()
            remove_cgroup_root(kube_node.config.cgroup_root)
        cleanup_prefix(self.prefix)
        if saved:
            restore_sysctls(saved)

    # --- failures and restarts, as the drills make them ---------------------------

    def fail_node(self, name: str) -> None:
        """A node dies: links down, kubelet, containerd, kube-proxy and every Pod gone."""
        # Its mount namespace first (found through the holder), then whatever else
        # is left in its network namespace (the API fronts).
        self.host(name, self.node(name).ip).exec("ip", "link", "set", "eth0", "down")
        self.kube_node(name).kill()
        super().fail_node(name)

    def restore_node(self, name: str) -> None:
        """The node boots again: no floating IPs, nothing under /run (a tmpfs), the
        images still on disk; kubelet starts the static Pod, the DaemonSet its agent."""
        spec = self.node(name)
        host = self.host(name, spec.ip)
        host.exec("ip", "addr", "flush", "dev", "eth0", "label", "eth0:bgplb")
        host.exec("ip", "link", "set", "eth0", "up")
        self._routes(spec)
        node = self.kube_node(name)
        for volatile in ("run/containerd", "var/lib/cni"):
            shutil.rmtree(node.dir / "root" / volatile, ignore_errors=True)
            (node.dir / "root" / volatile).mkdir(parents=True)
        if spec.control_plane:
            host.exec("ip", "addr", "flush", "dev", "lo", "to", f"{CONTROL_PLANE_VIP}/32")
            self._api_front(spec)
        node.start()

    def _pods(self, selector: str, node: str | None = None) -> list[dict[str, Any]]:
        args = ["get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json"]
        if node is not None:
            args += ["--field-selector", f"spec.nodeName={node}"]
        return list(json.loads(self.kubectl(*args))["items"])

    @staticmethod
    def _ready(pod: dict[str, Any]) -> bool:
        statuses = pod.get("status", {}).get("containerStatuses", [])
        return bool(statuses) and all(c.get("ready") for c in statuses)

    def restart_agent(self, node: str) -> None:
        """Delete the node's agent Pod (a rollout does); the DaemonSet makes a new one."""
        selector = "app.kubernetes.io/component=agent"
        old = self._pods(selector, node)[0]["metadata"]["name"]
        self.kubectl("delete", "pod", "-n", NAMESPACE, old, "--wait=true", "--timeout=60s")

        def replaced() -> bool:
            pods = self._pods(selector, node)
            return any(p["metadata"]["name"] != old and self._ready(p) for p in pods)

        wait_for(f"a new agent Pod on {node}", replaced, timeout=90, every=0.5)

    def restart_controller(self) -> None:
        """Delete the leading controller's Pod; the other replica takes the lead."""

        def holder() -> str:
            lease = json.loads(
                self.kubectl("get", "lease", "-n", NAMESPACE, "bgplb-controller", "-o", "json")
            )
            return str(lease["spec"].get("holderIdentity") or "")

        leader = holder()
        pod = leader.rsplit("-", 1)[0]  # the identity is <pod>-<pid>
        self.kubectl("delete", "pod", "-n", NAMESPACE, pod, "--wait=true", "--timeout=60s")
        wait_for(
            "another controller leading",
            lambda: holder() not in ("", leader) and not holder().startswith(pod),
            timeout=90,
            every=0.5,
        )

    def _container_logs(self, nodes: Iterable[str], component: str) -> str:
        """The logs of bgplb's `component` containers on `nodes`, from the nodes'
        disks (no API needed)."""
        logs = sorted(
            log
            for node in nodes
            for log in (self.kube_node(node).dir / "root" / "var" / "log" / "pods").glob(
                f"{NAMESPACE}_bgplb-{component}-*/{component}/*.log"
            )
        )
        return "".join(log.read_text(errors="replace") for log in logs)

    def agent_log(self, node: str) -> str:
        """The node's agent containers' logs."""
        return self._container_logs([node], "agent")

    def controller_log(self) -> str:
        """Every controller container's log, wherever it ran."""
        return self._container_logs((n.name for n in NODES), "controller")

    # --- what the fabric sees ----------------------------------------------------

    def bgplb_pods(self) -> list[dict[str, Any]]:
        out = self.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json")
        return [
            p
            for p in json.loads(out)["items"]
            if p["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "bgplb"
        ]

    def wait_ready(self, timeout: float = 300) -> None:
        # Two controllers, two webhooks, an agent and a speaker per node, a
        # bgpadvertiser per control-plane node.
        expected = 4 + 2 * len(NODES) + sum(n.control_plane for n in NODES)

        def pods_running() -> bool:
            pods = self.bgplb_pods()
            running = [p for p in pods if p["status"].get("phase") == "Running"]
            return len(running) == expected

        wait_for("every bgplb Pod Running", pods_running, timeout)
        super().wait_ready(timeout)

        # Routes on the ToRs are not the end of it: every node's kube-proxy must also
        # have the VIP's rules (it learns the VIP from the Service status, which may
        # come after the route). Up means the client is answered.
        def answering() -> bool:
            out = self.client_requests(10)
            return "FAILED" not in out and out.count("answered by") == 10

        wait_for("the demo VIP answering 10 requests in a row", answering, timeout)

    def views(self) -> Iterator[str]:
        yield "$ kubectl get nodes -o wide"
        yield self.kubectl("get", "nodes", "-o", "wide")
        yield "$ kubectl -n kube-system get pods -o wide    # the chart's Pods, bgpadvertiser"
        yield self.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide")
        yield from super().views()
