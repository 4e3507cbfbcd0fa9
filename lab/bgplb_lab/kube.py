"""A real Kubernetes API for tests and the lab: etcd + kube-apiserver on loopback.

Client-certificate auth with an admin kubeconfig (system:masters), RBAC on, service
account tokens signed by a generated key, so `kubectl`, the kubernetes client and
kopf all work against it as against a cluster. Binaries: kube-apiserver built by
scripts/build-kube.sh into the cache; etcd from Debian's etcd-server.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bgplb_lab.daemons import wait_for

KUBE_VERSION = os.environ.get("BGPLB_KUBE_VERSION", "v1.32.13")
SERVICE_CIDR = "198.19.0.0/16"
SERVICE_IP = "198.19.0.1"  # the `kubernetes` Service's ClusterIP
ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    return Path(os.environ.get("BGPLB_CACHE", Path.home() / ".cache" / "bgplb"))


def kube_binary(name: str = "kube-apiserver") -> Path:
    """A cached Kubernetes binary of KUBE_VERSION, built on first use (minutes)."""
    binary = cache_dir() / "kube" / KUBE_VERSION / name
    if not binary.exists():
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "build-kube.sh"), KUBE_VERSION, name], check=True
        )
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


@dataclass
class CA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, cn: str = "bgplb-lab-ca") -> CA:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def issue(
        self,
        cn: str,
        *,
        org: str | None = None,
        server: bool = False,
        ips: tuple[str, ...] = (),
        dns: tuple[str, ...] = (),
    ) -> tuple[bytes, bytes]:
        """(cert PEM, key PEM) for a client, or a server with these IP and DNS SANs."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, org))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            sans: list[x509.GeneralName] = [x509.DNSName(n) for n in ("localhost", *dns)]
            sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_pem

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class KubeAPI:
    """etcd + kube-apiserver in a work directory; `kubeconfig` is the admin's."""

    workdir: Path
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    netns: str | None = None
    """Run inside this network namespace (the lab's control-plane host)."""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ca: CA = field(default_factory=CA.create)
    extra_args: list[str] = field(default_factory=list)
    """More kube-apiserver flags."""
    extra_sans: tuple[str, ...] = ()
    """More IP addresses in the serving certificate (a VIP in front of it)."""
    _apiserver_args: list[str] = field(default_factory=list)
    etcd_url: str = ""

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    def _write(self, name: str, data: bytes) -> Path:
        path = self.workdir / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    def _in_netns(self, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *cmd] if self.netns else cmd

    def start(self, timeout: float = 90) -> KubeAPI:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ca = self._write("ca.crt", self.ca.pem)
        server_crt, server_key = self.ca.issue(
            "kube-apiserver",
            server=True,
            ips=(self.host, SERVICE_IP, *self.extra_sans),
            dns=("kubernetes", "kubernetes.default", "kubernetes.default.svc"),
        )
        admin_crt, admin_key = self.ca.issue("bgplb-admin", org="system:masters")
        # kube-apiserver's client certificate towards kubelets (logs, exec).
        kubelet_crt, kubelet_key = self.ca.issue("kube-apiserver-kubelet", org="system:masters")
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        sa_pem = sa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        files = {
            "server.crt": server_crt,
            "server.key": server_key,
            "admin.crt": admin_crt,
            "admin.key": admin_key,
            "sa.key": sa_pem,
            "kubelet-client.crt": kubelet_crt,
            "kubelet-client.key": kubelet_key,
        }
        paths = {name: self._write(name, data) for name, data in files.items()}
        etcd_client, etcd_peer = free_port(), free_port()
        etcd = subprocess.Popen(
            self._in_netns(
                [
                    "etcd",
                    "--data-dir",
                    str(self.workdir / "etcd"),
                    "--listen-client-urls",
                    f"http://127.0.0.1:{etcd_client}",
                    "--advertise-client-urls",
                    f"http://127.0.0.1:{etcd_client}",
                    "--listen-peer-urls",
                    f"http://127.0.0.1:{etcd_peer}",
                    "--initial-advertise-peer-urls",
                    f"http://127.0.0.1:{etcd_peer}",
                    "--initial-cluster",
                    f"default=http://127.0.0.1:{etcd_peer}",
                    "--log-level",
                    "warn",
                ]
            ),
            stdout=(self.workdir / "etcd.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(etcd)
        self.etcd_url = f"http://127.0.0.1:{etcd_client}"
        self._apiserver_args = [
            str(kube_binary()),
            f"--etcd-servers=http://127.0.0.1:{etcd_client}",
            f"--bind-address={self.host}",
            f"--advertise-address={self.host}",
            f"--secure-port={self.port}",
            f"--tls-cert-file={paths['server.crt']}",
            f"--tls-private-key-file={paths['server.key']}",
            f"--client-ca-file={ca}",
            f"--service-account-key-file={paths['sa.key']}",
            f"--service-account-signing-key-file={paths['sa.key']}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--authorization-mode=Node,RBAC",  # Node: what kubelets may read and write
            f"--service-cluster-ip-range={SERVICE_CIDR}",  # room for benchmark-sized clusters
            f"--kubelet-client-certificate={paths['kubelet-client.crt']}",
            f"--kubelet-client-key={paths['kubelet-client.key']}",
            "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--v=1",
            *self.extra_args,
        ]
        self._write_kubeconfig(ca, paths["admin.crt"], paths["admin.key"])
        return self.start_apiserver(timeout)

    def start_apiserver(self, timeout: float = 90) -> KubeAPI:
        """(Re)start kube-apiserver on the existing etcd and certificates."""
        apiserver = subprocess.Popen(
            self._in_netns(self._apiserver_args),
            stdout=(self.workdir / "kube-apiserver.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(apiserver)
        wait_for("kube-apiserver /readyz", self.ready, timeout=timeout, every=0.5)
        return self

    def _write_kubeconfig(self, ca: Path, crt: Path, key: Path) -> None:
        self.kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: lab\n  cluster:\n    server: {self.url}\n"
            f"    certificate-authority: {ca}\n"
            f"users:\n- name: admin\n  user:\n    client-certificate: {crt}\n"
            f"    client-key: {key}\n"
            "contexts:\n- name: lab\n  context:\n    cluster: lab\n    user: admin\n"
            "    namespace: kube-system\n"
            "current-context: lab\n"
        )

    def ready(self) -> bool:
        if any(p.poll() is not None for p in self.procs):
            logs = (self.workdir / "kube-apiserver.log").read_text()[-2000:]
            raise RuntimeError(f"etcd or kube-apiserver exited:\n{logs}")
        if self.netns:
            return self.kubectl("get", "--raw=/readyz", check=False).strip() == "ok"
        context = ssl.create_default_context(cafile=str(self.workdir / "ca.crt"))
        context.load_cert_chain(self.workdir / "admin.crt", self.workdir / "admin.key")
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", context=context, timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def client_credentials(self, user: str, group: str | None = None) -> tuple[Path, Path]:
        """A client certificate and key: kubelets are system:node:<node> in
        system:nodes; kube-proxy is system:kube-proxy (bound to system:node-proxier)."""
        crt, key = self.ca.issue(user, org=group)
        name = user.replace(":", "-")
        return self._write(f"{name}.crt", crt), self._write(f"{name}.key", key)

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> str:
        done = subprocess.run(
            self._in_netns(
                ["kubectl", f"--kubeconfig={self.kubeconfig}", "--request-timeout=5s", *args]
            ),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout + (done.stderr if not check else "")

    def install_crds(self) -> None:
        self.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all")

    def add_node(self, name: str, ip: str, labels: dict[str, str] | None = None) -> None:
        """A Node object as a kubelet would register it (there is no kubelet here)."""
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels or {}},
        }
        self.kubectl("apply", "-f", "-", stdin=json.dumps(node))
        status = {"status": {"addresses": [{"type": "InternalIP", "address": ip}]}}
        self.kubectl(
            "patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps(status)
        )

    def controller_command(self, namespace: str, *extra: str) -> list[str]:
        """`bgplb-controller` against this API server."""
        return [
            sys.executable,
            "-m",
            "bgplb.controller",
            "--kubeconfig",
            str(self.kubeconfig),
            "--namespace",
            namespace,
            "--metrics-port",
            "0",
            "--health",
            f"http://127.0.0.1:{free_port()}/healthz",
            *extra,
        ]

    def agent_command(self, namespace: str, node: str, ip: str, *extra: str) -> list[str]:
        """`bgplb-agent` for one node, reading from and reporting to this API server;
        its witness answers signed with the key every agent of this lab shares (what
        the chart's Secret is to Pods)."""
        key = self.workdir / "witness.key"
        if not key.exists():
            key.write_text(secrets.token_hex(24))
            key.chmod(0o600)
        return [
            sys.executable,
            "-m",
            "bgplb.agent",
            "--node",
            node,
            "--node-ip",
            ip,
            "--kubeconfig",
            str(self.kubeconfig),
            "--namespace",
            namespace,
            "--witness-key-file",
            str(key),
            *extra,
        ]

    def delete_from_etcd(self, key: str) -> int:
        """Delete one key straight from etcd (its v3 JSON gateway), behind the API
        server's back: with kube-apiserver down, a deletion no watch will report.
        Returns how many keys went."""
        body = json.dumps({"key": base64.b64encode(key.encode()).decode()})
        post = (
            "import sys, urllib.request as u;"
            "r = u.Request(sys.argv[1], sys.argv[2].encode());"
            "print(u.urlopen(r, timeout=5).read().decode())"
        )
        url = f"{self.etcd_url}/v3/kv/deleterange"
        out = subprocess.run(
            self._in_netns([sys.executable, "-c", post, url, body]),
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout
        return int(json.loads(out).get("deleted", 0))

    def stop_apiserver(self, *, crash: bool = False) -> None:
        """Stop only kube-apiserver (etcd keeps the data) — to test API outages.
        `crash`: SIGKILL, as a failing server gives no notice."""
        proc = self.procs.pop()
        if crash:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:  # a graceful shutdown can take its time
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()


def temporary(prefix: str = "bgplb-kube-") -> KubeAPI:
    return KubeAPI(Path(tempfile.mkdtemp(prefix=prefix)))


def remove(api: KubeAPI) -> None:
    api.stop()
    shutil.rmtree(api.workdir, ignore_errors=True)
