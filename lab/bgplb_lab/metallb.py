"""MetalLB beside bgplb in the same lab, against the same ToRs, for side-by-side drills.

- Built here: `go install go.universe.tf/metallb/{controller,speaker}@v0.15.2` from the
  Go module proxy (v0.16 does not build here: the proxy refuses its frr-k8s), each
  static binary alone in a scratch image, imported into every node's containerd.
- Installed from the module's own `config/manifests/metallb-native.yaml` (native BGP
  mode: MetalLB's own BGP speaker, no FRR), changed only where this lab needs it:
  our images, never pulled; `--lb-class` so MetalLB serves only the Services that
  ask for it (bgplb takes those with its class or none); and no admission webhook
  (its certificates and Service would need what this comparison does not measure;
  the configuration applied here is fixed and known good).
- Sessions: each load-balancer node's speaker (n1-n3, as bgplb's) peers with both
  ToRs from an address of its own on the fabric (.111-.113): the node addresses
  already carry bgplb's control-plane sessions, and a ToR has one session per
  neighbour address. MetalLB sends that address as the next hop.
- The same CPU and memory requests as their bgplb counterparts (the controller as
  bgplb's controller, the speaker as bgplb's agent), from the chart's values. The
  upstream manifest asks for none, which makes MetalLB's Pods BestEffort (cpu.shares
  2): on the lab's four nodes sharing two cores they starved behind bgplb's Pods —
  a one-sided handicap in every drill, and in a full CI run MetalLB's controller
  stopped assigning addresses for over 120 s at 806 of the 1,000 Services.
- The same timers as bgplb's BGPPeers (hold 9 s, keepalive 3 s). Native mode has no
  BFD; MetalLB's FRR mode would need an FRR container image, which nothing here
  builds (see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bgplb_lab.daemons import wait_for
from bgplb_lab.images import Builder, Image, _hash
from bgplb_lab.kube import ROOT
from bgplb_lab.topology import BIRD_IP, FRR_IP, LOCAL_ASN, NODES, TOR_ASN

if TYPE_CHECKING:
    from bgplb_lab.kubelets import KubeletLab

VERSION = "v0.15.2"
MODULE = "go.universe.tf/metallb"
NAMESPACE = "metallb-system"
CLASS = "metallb.io/metallb"
"""The loadBalancerClass of the Services MetalLB serves here."""
POOL = "203.0.113.16-203.0.113.63"
"""MetalLB's addresses (bgplb's pool is 203.0.113.1-4, its bench pool .64-.127)."""
SOURCES = {n.name: f"192.0.2.{111 + i}" for i, n in enumerate(NODES) if n.control_plane}
"""Load-balancer node → the fabric address its MetalLB sessions start from."""
HOLD_TIME = "9s"
"""bgplb's BGPPeer default (holdTimeSeconds 9; native mode refuses keepaliveTime and
sends keepalives every third of the hold time: 3 s, bgplb's default too)."""


def counterpart_requests() -> dict[str, dict[str, str]]:
    """MetalLB container → its requests: those of its bgplb counterpart (the docstring)."""
    values = yaml.safe_load((ROOT / "charts" / "bgplb" / "values.yaml").read_text())
    return {
        "controller": dict(values["controller"]["resources"]["requests"]),
        "speaker": dict(values["agent"]["resources"]["requests"]),
    }


def module_dir() -> Path:
    """The MetalLB module's source, from the Go module proxy (the Go module cache)."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{MODULE}@{VERSION}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
        cwd=tempfile.gettempdir(),
    ).stdout
    return Path(json.loads(out)["Dir"])


def images(builder: Builder) -> tuple[Image, Image]:
    """The controller and speaker images (cached archives, keyed by the version)."""
    built = []
    for component in ("controller", "speaker"):
        name = f"localhost/metallb-{component}:{VERSION}"
        # Beside, not among, the lab's own archives: the lab prunes those to its own.
        archive = builder.cache / "metallb" / f"{component}-{_hash(VERSION.encode())}.tar"
        if not archive.exists():
            archive.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory() as work:
                subprocess.run(
                    ["go", "install", "-trimpath", "-ldflags=-s -w",
                     f"{MODULE}/{component}@{VERSION}"],
                    env={**os.environ, "CGO_ENABLED": "0", "GOBIN": work},
                    check=True,
                    timeout=1800,
                    cwd=tempfile.gettempdir(),
                )  # fmt: skip
                container = builder.buildah("from", "scratch").strip()
                try:
                    builder.buildah("copy", container, f"{work}/{component}", f"/{component}")
                    builder.buildah("config", "--entrypoint", f'["/{component}"]', container)
                    builder.buildah("commit", "--rm", container, name)
                except BaseException:
                    builder.buildah("rm", container)
                    raise
            builder.save(name, archive)
        built.append(Image(name, archive))
    return built[0], built[1]


def manifests(source: Path, controller: Image, speaker: Image) -> list[dict[str, Any]]:
    """metallb-native.yaml with this lab's changes (the module docstring)."""
    out = []
    requests = counterpart_requests()
    for obj in yaml.safe_load_all(source.read_text()):
        if not obj or obj["kind"] == "ValidatingWebhookConfiguration":
            continue
        if obj["kind"] in ("Deployment", "DaemonSet"):
            (container,) = [
                c for c in obj["spec"]["template"]["spec"]["containers"]
                if c["name"] in ("controller", "speaker")
            ]  # fmt: skip
            image = controller if container["name"] == "controller" else speaker
            container["image"] = image.name
            container["imagePullPolicy"] = "Never"
            container["args"].append(f"--lb-class={CLASS}")
            container["resources"] = {"requests": requests[container["name"]]}
            if container["name"] == "controller":
                container["args"] += ["--webhook-mode=disabled", "--disable-cert-rotation"]
        out.append(obj)
    return out


def config() -> list[dict[str, Any]]:
    """The pool, its BGP advertisement, and a BGPPeer per load-balancer node and ToR."""

    def obj(kind: str, name: str, spec: dict[str, Any], version: str = "v1beta1") -> dict[str, Any]:
        return {
            "apiVersion": f"metallb.io/{version}",
            "kind": kind,
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": spec,
        }

    objects = [
        obj("IPAddressPool", "lab", {"addresses": [POOL]}),
        obj("BGPAdvertisement", "lab", {"ipAddressPools": ["lab"]}),
    ]
    for node, source in SOURCES.items():
        for tor, address in (("frr", FRR_IP), ("bird", BIRD_IP)):
            spec = {
                "myASN": LOCAL_ASN,
                "peerASN": TOR_ASN,
                "peerAddress": address,
                "sourceAddress": source,
                "holdTime": HOLD_TIME,  # native mode keeps alive every third of it
                "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": node}}],
            }
            objects.append(obj("BGPPeer", f"{node}-{tor}", spec, "v1beta2"))
    return objects


def service(name: str, selector: dict[str, str], port: int, target: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": CLASS,
            "selector": selector,
            "ports": [{"port": port, "targetPort": target}],
        },
    }


def install(lab: KubeletLab, timeout: float = 300) -> None:
    """MetalLB into the running lab: images into every node, the fabric addresses its
    sessions start from, the manifests, then its configuration once its Pods run."""
    lab.say(f"MetalLB {VERSION}: images, install, configuration")
    builder = Builder(log=lab.workdir / "images.log")
    try:
        controller, speaker = images(builder)
    finally:
        builder.release()
    for node in NODES:
        kube = lab.kube_node(node.name)
        for image in (controller, speaker):
            kube.import_image(image.archive)
        if node.name in SOURCES:
            lab.host(node.name, node.ip).exec(
                "ip", "addr", "add", f"{SOURCES[node.name]}/24", "dev", "eth0"
            )
    lab.apply(
        manifests(
            module_dir() / "config" / "manifests" / "metallb-native.yaml", controller, speaker
        )
    )

    def ready(pod: dict[str, Any]) -> bool:
        conditions = pod["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def running() -> bool:
        pods = lab.get_json("pods", "-n", NAMESPACE)["items"]
        return sum(map(ready, pods)) == len(NODES) + 1  # a speaker per node, the controller

    wait_for("MetalLB's Pods ready", running, timeout=timeout, every=1)
    lab.apply(config())


def vip(lab: KubeletLab, name: str) -> str | None:
    """The address MetalLB gave Service default/`name` (None: none yet)."""
    svc = lab.get_json("service", "-n", "default", name)
    ingress = (svc.get("status", {}).get("loadBalancer") or {}).get("ingress") or []
    return str(ingress[0]["ip"]) if ingress else None
