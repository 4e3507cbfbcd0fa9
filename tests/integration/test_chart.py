"""The Helm chart and the admission webhooks against a real kube-apiserver.

- `helm lint`; `helm template` accepted by the API server (server-side dry run);
- `helm install`: every object accepted, the default CRs exist (no kubelet: no Pods);
- the webhook server, with the certificate the chart generated, reached by the API
  server through the chart's Service (endpoint routing; Endpoints written by hand in
  place of a running Pod): a bad BGPPeer refused naming the field, a good one
  admitted with its defaults and warnings, a Service VIP conflict refused;
- RBAC: what the agent's service account may and may not do, and the admission
  policy that holds each agent to its own node's Lease.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bgplb_lab.daemons import stop_processes, wait_for
from bgplb_lab.kube import ROOT, KubeAPI, free_port
from bgplb_lab.manifests import peer, service
from bgplb_lab.netns import Host, segment

NS = "kube-system"
CHART = ROOT / "charts" / "bgplb"
API_IP = "192.0.2.250"
VALUES = [
    "--set", "localASN=65001",
    "--set", "floatingIPs={192.0.2.100,192.0.2.101}",
    "--set", "peers[0].name=tor-a", "--set", "peers[0].peerIP=192.0.2.1",
    "--set", "peers[0].peerASN=65002", "--set", "peers[0].sessions=2",
    "--set", "addressPools[0].name=pool1",
    "--set", "addressPools[0].addresses={203.0.113.1-203.0.113.4}",
]  # fmt: skip
AGENT = f"system:serviceaccount:{NS}:bgplb-agent"


def helm_binary() -> str:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-helm.sh")],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_helm_lint() -> None:
    helm = helm_binary()
    for args in ([], VALUES):
        done = subprocess.run(
            [helm, "lint", "--strict", str(CHART), *args],
            check=False,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def helm_template(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_binary(), "template", "x", str(CHART), *args],
        check=check,
        capture_output=True,
        text=True,
    )


def container(template: str, *extra: str) -> dict[str, Any]:
    """The first container of one of the chart's workloads, rendered."""
    out = helm_template("-s", template, *extra).stdout
    return dict(yaml.safe_load(out)["spec"]["template"]["spec"]["containers"][0])


def test_values_schema_refuses_bad_values() -> None:
    for value, field in (
        ("localASN=0", "localASN"),
        ("agent.bgpListenPort=70000", "bgpListenPort"),
    ):
        done = helm_template("--set", value, check=False)
        assert done.returncode != 0, value
        assert field in done.stderr


def test_helm_template_is_accepted_by_the_api_server(kube: KubeAPI, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "controlPlane": {
                    "vip": "198.51.100.8",
                    "port": 443,
                    "peers": [
                        {"ip": "192.0.2.1", "asn": 65002, "controlPlaneNodes": ["192.0.2.11"]},
                        {"ip": "192.0.2.2", "asn": 65002, "controlPlaneNodes": ["192.0.2.12"]},
                    ],
                },
                "grafanaDashboard": {"enabled": True},
            }
        )
    )
    rendered = subprocess.run(
        [
            helm_binary(), "template", "bgplb", str(CHART), "-n", NS, "--include-crds",
            *VALUES, "-f", str(values),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = {d["kind"] for d in docs}
    assert {"DaemonSet", "Deployment", "ValidatingWebhookConfiguration", "ConfigMap"} <= kinds
    lb = next(d for d in docs if d["kind"] == "BGPLoadBalancer")
    assert lb["spec"]["controlPlane"]["vip"] == "198.51.100.8"
    assert lb["spec"]["addressPools"] == [
        {"name": "pool1", "addresses": ["203.0.113.1-203.0.113.4"]}
    ]
    out = kube.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", stdin=rendered)
    assert "serverside-applied (server dry run)" in out
    assert out.count("(server dry run)") == len([d for d in yaml.safe_load_all(rendered) if d])


# --- helm install into an API server in a namespace, with the webhook serving ----------


@dataclass
class Installed:
    api: KubeAPI
    host: Host
    workdir: Path
    helm: list[str]

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        return self.api.kubectl(*args, stdin=stdin, check=check)


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    work = Path(tempfile.mkdtemp(prefix="bgplb-chart-"))
    webhook: subprocess.Popen[bytes] | None = None
    with segment(f"bh{os.getpid() % 10000}-") as seg:
        host = seg.add_host("api", f"{API_IP}/24")
        # Webhooks are reached through their Service's endpoints (no kube-proxy here).
        api = KubeAPI(
            work / "kube",
            host=API_IP,
            port=free_port(),
            netns=host.netns,
            extra_args=["--enable-aggregator-routing=true"],
        )
        try:
            api.start()
            helm = [
                "ip", "netns", "exec", host.netns, helm_binary(),
                f"--kubeconfig={api.kubeconfig}",
            ]  # fmt: skip
            subprocess.run(
                [*helm, "install", "bgplb", str(CHART), "-n", NS, *VALUES],
                check=True,
                capture_output=True,
            )
            tls = json.loads(api.kubectl("get", "secret", "bgplb-webhook-tls", "-o", "json"))
            for key in ("tls.crt", "tls.key"):
                (work / key).write_bytes(base64.b64decode(tls["data"][key]))
            # What the endpoints controller would write for a ready webhook Pod.
            endpoints = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": "bgplb-webhook", "namespace": NS},
                "subsets": [
                    {
                        "addresses": [{"ip": API_IP}],
                        "ports": [{"name": "https", "port": 9443}],
                    }
                ],
            }
            api.kubectl("apply", "-f", "-", stdin=json.dumps(endpoints))
            webhook = host.popen(
                [
                    sys.executable, "-m", "bgplb_webhooks.server",
                    "--kubeconfig", str(api.kubeconfig), "--namespace", NS,
                    "--address", API_IP, "--port", "9443",
                    "--tls-cert", str(work / "tls.crt"), "--tls-key", str(work / "tls.key"),
                ],
                work / "webhook.log",
            )  # fmt: skip
            wait_for("the webhook", lambda: "serving" in (work / "webhook.log").read_text())
            yield Installed(api, host, work, helm)
        finally:
            stop_processes(webhook)
            api.stop()
            if os.environ.get("BGPLB_KEEP_LOGS") is None:
                shutil.rmtree(work, ignore_errors=True)


def test_helm_install_creates_every_object_and_the_default_configuration(
    installed: Installed,
) -> None:
    for kind, name in [
        ("deployment", "bgplb-controller"),
        ("deployment", "bgplb-webhook"),
        ("daemonset", "bgplb-agent"),
        ("daemonset", "bgplb-speaker"),
        ("service", "bgplb-controller-metrics"),
        ("poddisruptionbudget", "bgplb-controller"),
        ("validatingwebhookconfiguration", "bgplb-validate"),
        ("mutatingwebhookconfiguration", "bgplb-defaults"),
        ("validatingadmissionpolicy", "bgplb-agent-own-lease"),
        ("validatingadmissionpolicy", "bgplb-agent-own-sessions"),
        ("bgploadbalancer", "default"),
        ("networkgatewaygroup", "default"),
        ("bgppeer", "tor-a"),
    ]:
        installed.kubectl("get", kind, name, "-n", NS)
    daemonset = json.loads(installed.kubectl("get", "ds", "bgplb-agent", "-o", "json"))
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    agent = next(c for c in pod["containers"] if c["name"] == "agent")
    assert agent["securityContext"]["capabilities"] == {"add": ["NET_ADMIN"], "drop": ["ALL"]}
    assert not agent["securityContext"]["privileged"]
    assert any(t["key"] == "node-role.kubernetes.io/control-plane" for t in pod["tolerations"])
    # gobgpd apart from the agent, so an agent rollout never restarts it.
    assert [c["name"] for c in pod["containers"]] == ["agent"]
    speaker = json.loads(installed.kubectl("get", "ds", "bgplb-speaker", "-o", "json"))
    assert speaker["spec"]["updateStrategy"]["type"] == "OnDelete"
    spec = speaker["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert spec["tolerations"] == pod["tolerations"]
    gobgpd, bfd = spec["containers"]
    # gRPC on a unix socket only the speaker and the agent mount, never on TCP
    assert gobgpd["command"] == ["bgplb", "gobgpd", "--socket=/run/bgplb/speaker/gobgpd.sock"]
    assert not any("api-hosts" in a for a in gobgpd["args"])
    assert "--speaker=unix:///run/bgplb/speaker/gobgpd.sock" in agent["args"]
    # BFD beside gobgpd (an agent rollout must not stop it), driven the same way.
    assert bfd["command"] == ["bgplb", "bfd", "--socket=/run/bgplb/speaker/bfd.sock"]
    assert bfd["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # The one capability gobgpd gets: binding port 179, for sessions routers open.
    assert gobgpd["securityContext"]["capabilities"] == {
        "add": ["NET_BIND_SERVICE"],
        "drop": ["ALL"],
    }
    assert "--bgp-listen-port=179" in agent["args"]
    assert "--bfd-socket=/run/bgplb/speaker/bfd.sock" in agent["args"]
    assert {m["mountPath"]: m.get("readOnly") for m in agent["volumeMounts"]}[
        "/run/bgplb/speaker"
    ] is True


def test_the_witness_key_is_made_once_and_kept_by_upgrades(installed: Installed) -> None:
    """Agents of two revisions must understand each other during a rollout."""

    def key() -> bytes:
        secret = json.loads(installed.kubectl("get", "secret", "bgplb-witness-key", "-o", "json"))
        return base64.b64decode(secret["data"]["key"])

    before = key()
    assert len(before) >= 32
    subprocess.run(
        [*installed.helm, "upgrade", "bgplb", str(CHART), "-n", NS, *VALUES],
        check=True,
        capture_output=True,
    )
    assert key() == before
    daemonset = json.loads(installed.kubectl("get", "ds", "bgplb-agent", "-o", "json"))
    pod = daemonset["spec"]["template"]["spec"]
    (agent,) = pod["containers"]
    assert "--witness-key-file=/etc/bgplb/witness/key" in agent["args"]
    volume = next(v for v in pod["volumes"] if v["name"] == "witness-key")
    assert volume["secret"]["secretName"] == "bgplb-witness-key"


def test_webhook_refuses_a_bad_peer_naming_the_field(installed: Installed) -> None:
    # The CRD schema refuses what one object shows (iBGP, ranges); the webhook adds
    # what only the rest of the configuration shows.
    bad = peer("tor-b", peerIP="192.0.2.1", peerASN=65002)
    out = installed.kubectl("apply", "-f", "-", stdin=json.dumps(bad), check=False)
    assert 'admission webhook "config.validate.networking.bgplb.io" denied the request' in out
    assert "spec.peerIP: 192.0.2.1 is already the peer of BGPPeer tor-a" in out
    installed.kubectl("get", "bgppeer", "tor-a")  # nothing already there was touched
    assert "tor-b" not in installed.kubectl("get", "bgppeers")


def test_webhook_admits_a_good_peer_with_defaults_and_warnings(installed: Installed) -> None:
    good = peer("tor-b", peerIP="192.0.2.2", peerASN=65002, sessions=1)
    out = installed.kubectl("apply", "-f", "-", stdin=json.dumps(good), check=False)
    assert "bgppeer.networking.bgplb.io/tor-b created" in out
    assert "Warning: spec.sessions: 1" in out
    stored = json.loads(installed.kubectl("get", "bgppeer", "tor-b", "-o", "json"))["spec"]
    assert stored["holdTimeSeconds"] == 9
    assert stored["keepaliveTimeSeconds"] == 3
    installed.kubectl("delete", "bgppeer", "tor-b")


def test_webhook_refuses_a_floating_ip_outside_the_pool_rules(installed: Installed) -> None:
    gateway = json.loads(installed.kubectl("get", "ngg", "default", "-o", "json"))
    gateway["spec"]["floatingIPs"] = ["192.0.2.100", "203.0.113.2"]
    out = installed.kubectl("apply", "-f", "-", stdin=json.dumps(gateway), check=False)
    assert "spec.floatingIPs[1]: 203.0.113.2 is inside address pool" in out


def test_webhook_refuses_a_service_vip_already_taken(installed: Installed) -> None:
    first = service("a", loadBalancerIP="203.0.113.2")
    installed.kubectl("apply", "-f", "-", stdin=json.dumps(first))
    second = service("b", loadBalancerIP="203.0.113.2")
    out = installed.kubectl("apply", "-f", "-", stdin=json.dumps(second), check=False)
    assert "spec.loadBalancerIP: 203.0.113.2 is already the VIP of Service default/a" in out
    outside = service("c", loadBalancerIP="198.51.100.9")
    out = installed.kubectl("apply", "-f", "-", stdin=json.dumps(outside), check=False)
    assert "spec.loadBalancerIP: 198.51.100.9 is not in any address pool" in out
    installed.kubectl("delete", "service", "a", "-n", "default")


def _can(installed: Installed, *args: str) -> bool:
    out = installed.kubectl("auth", "can-i", *args, f"--as={AGENT}", "-n", NS, check=False)
    return out.strip().splitlines()[0] == "yes"


def test_agent_rbac_is_least_privilege(installed: Installed) -> None:
    assert _can(installed, "list", "bgpsessions.networking.bgplb.io")
    assert _can(installed, "patch", "bgpsessions.networking.bgplb.io", "--subresource=status")
    assert not _can(installed, "patch", "bgpsessions.networking.bgplb.io")
    assert not _can(installed, "patch", "bgppeers.networking.bgplb.io")
    assert not _can(installed, "update", "bgppeers.networking.bgplb.io")
    assert not _can(installed, "get", "bgppeers.networking.bgplb.io")
    assert not _can(installed, "get", "secrets")
    assert not _can(installed, "delete", "leases.coordination.k8s.io")
    assert not _can(installed, "update", "leases.coordination.k8s.io/bgplb-controller")


def test_agent_may_write_only_its_own_nodes_lease(installed: Installed) -> None:
    """RBAC names no Lease (one service account serves every node); the admission
    policy compares the Lease with the node the agent's token is bound to."""

    def create_lease(name: str, node: str) -> str:
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"holderIdentity": node},
        }
        return _impersonated_create(installed, lease, node)

    out = create_lease("bgplb-node-n2", "n1")
    assert "an agent may write only its own node's Lease (bgplb-node-n1), not bgplb-node-n2" in out
    out = create_lease("bgplb-node-n1", "n1")
    assert out.strip() == "done"


def _impersonated_create(installed: Installed, lease: dict[str, object], node: str) -> str:
    return _as_agent_on(
        installed,
        node,
        f"client.CoordinationV1Api(api).create_namespaced_lease({NS!r}, body)",
        lease,
    )


def _as_agent_on(installed: Installed, node: str, call: str, body: object) -> str:
    """kubectl 1.32 cannot impersonate user extras; the API can: `call` (with `api`
    and `body`) as the agent's service account, its token bound to `node`."""
    script = (
        "import json, sys\n"
        "from kubernetes import client, config\n"
        "config.load_kube_config(sys.argv[1])\n"
        "api = client.ApiClient()\n"
        f"api.set_default_header('Impersonate-User', {AGENT!r})\n"
        "api.set_default_header('Impersonate-Group', 'system:serviceaccounts')\n"
        "api.set_default_header("
        "'Impersonate-Extra-authentication.kubernetes.io%2fnode-name', sys.argv[2])\n"
        "body = json.loads(sys.stdin.read())\n"
        "try:\n"
        f"    {call}\n"
        "    print('done')\n"
        "except client.exceptions.ApiException as e:\n"
        "    print(json.loads(e.body)['message'])\n"
    )
    done = subprocess.run(
        [
            "ip", "netns", "exec", installed.host.netns, sys.executable, "-c", script,
            str(installed.api.kubeconfig), node,
        ],
        input=json.dumps(body), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.stdout + done.stderr


def test_agent_may_write_only_its_own_nodes_session_status(installed: Installed) -> None:
    session = {
        "apiVersion": "networking.bgplb.io/v1",
        "kind": "BGPSession",
        "metadata": {"name": "tor-a-n2", "namespace": NS},
        "spec": {
            "localIP": "192.0.2.12", "localASN": 65001, "nodeName": "n2",
            "peerASN": 65000, "peerIP": "192.0.2.1", "peer": "tor-a",
        },
    }  # fmt: skip
    installed.kubectl("apply", "-f", "-", stdin=json.dumps(session))
    patch = (
        "client.CustomObjectsApi(api).patch_namespaced_custom_object_status("
        f"'networking.bgplb.io', 'v1', {NS!r}, 'bgpsessions', 'tor-a-n2', body)"
    )
    status = {"status": {"state": "Established"}}
    out = _as_agent_on(installed, "n1", patch, status)
    assert "an agent may write only the status of its own node's sessions (n1), not n2's" in out
    got = json.loads(installed.kubectl("get", "bgpsession", "tor-a-n2", "-n", NS, "-o", "json"))
    assert "state" not in got.get("status", {})
    assert _as_agent_on(installed, "n2", patch, status).strip() == "done"
    installed.kubectl("delete", "bgpsession", "tor-a-n2", "-n", NS)


def _kubeconfig_for(installed: Installed, account: str, *bind: str) -> Path:
    """A kubeconfig holding a token of the chart's service account (optionally bound
    to a Pod, as the kubelet's projected tokens are)."""
    token = installed.kubectl("create", "token", account, "-n", NS, *bind).strip()
    path = installed.workdir / f"{account}.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "lab",
                        "cluster": {
                            "server": installed.api.url,
                            "certificate-authority": str(installed.api.workdir / "ca.crt"),
                        },
                    }
                ],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": account}}],
                "current-context": "lab",
            }
        )
    )
    return path


def test_controller_and_agent_work_with_only_their_chart_permissions(
    installed: Installed,
) -> None:
    """Least privilege must still be enough: run both with their service accounts'
    tokens and look for any refusal."""
    installed.api.add_node("n1", API_IP, {"node-role.kubernetes.io/control-plane": ""})
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bgplb-agent-n1", "namespace": NS},
        "spec": {
            "nodeName": "n1",
            "serviceAccountName": "bgplb-agent",
            "containers": [{"name": "agent", "image": "ghcr.io/bgplb/bgplb-agent:0.1.0"}],
        },
    }
    installed.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    controller_config = _kubeconfig_for(installed, "bgplb-controller")
    agent_config = _kubeconfig_for(
        installed, "bgplb-agent", "--bound-object-kind=Pod", "--bound-object-name=bgplb-agent-n1"
    )
    work = installed.workdir
    controller = installed.host.popen(
        [
            sys.executable, "-m", "bgplb.controller", "--kubeconfig", str(controller_config),
            "--namespace", NS, "--metrics-port", "0",
            "--health", f"http://127.0.0.1:{free_port()}/healthz",
        ],
        work / "controller.log",
    )  # fmt: skip
    agent = installed.host.popen(
        [
            sys.executable, "-m", "bgplb.agent", "--node", "n1", "--node-ip", API_IP,
            "--kubeconfig", str(agent_config), "--namespace", NS, "--metrics-address", "",
            "--speaker", "127.0.0.1:1",
        ],
        work / "agent.log",
    )  # fmt: skip
    try:
        installed.kubectl("apply", "-f", "-", stdin=json.dumps(service("web")))

        def vip() -> str:
            return installed.kubectl(
                "get", "svc", "web", "-n", "default",
                "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}",
            )  # fmt: skip

        assert wait_for("a VIP from the controller", vip, timeout=60).startswith("203.0.113.")
        wait_for(
            "the agent's own Lease",
            lambda: "bgplb-node-n1" in installed.kubectl("get", "leases"),
            timeout=30,
        )
        wait_for(
            "the agent to read its sessions",
            lambda: "speaker unreachable" in (work / "agent.log").read_text(),
            timeout=30,
        )
    finally:
        stop_processes(controller, agent, timeout=20)
        installed.kubectl("delete", "service", "web", "-n", "default", check=False)
    for log in ("controller.log", "agent.log"):
        text = (work / log).read_text()
        assert "Forbidden" not in text, text[-3000:]
        assert "forbidden" not in text, text[-3000:]


def test_the_mesh_can_be_turned_off() -> None:
    def agent_args(*extra: str) -> list[str]:
        return list(container("templates/agent.yaml", *extra)["args"])

    assert "--mesh" in agent_args()
    off = agent_args("--set", "agent.mesh=false")
    assert "--no-mesh" in off
    assert "--mesh" not in off


def test_the_bgp_listener_can_be_turned_off_and_then_gets_no_capability() -> None:
    off = ("--set", "agent.bgpListenPort=0")
    assert "--bgp-listen-port=0" in container("templates/agent.yaml", *off)["args"]
    gobgpd = container("templates/speaker.yaml", *off)
    assert gobgpd["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    high = container("templates/speaker.yaml", "--set", "agent.bgpListenPort=1790")
    assert high["securityContext"]["capabilities"] == {"drop": ["ALL"]}
