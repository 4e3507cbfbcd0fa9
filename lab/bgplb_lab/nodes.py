"""Real Kubernetes nodes in network namespaces: containerd, kubelet and kube-proxy.

Each node is a network namespace (made by the lab's segment) plus a mount and UTS
namespace held by a small holder process: a fresh sysfs for its network namespace
with the host's cgroup mounts bound back in, and private directories bound over the
paths a node keeps its state in (`/var/lib/kubelet`, `/run/containerd`,
`/etc/kubernetes`, ...), so four nodes on one machine share nothing. containerd,
kubelet and kube-proxy are started inside those namespaces with `nsenter`, each on
its own, so a drill can stop one of them. Verified traps: ../shared/REAL-NODES-NOTES.md.

Pods get addresses from the node's /28 of 203.0.113.128/25 (bridge + host-local CNI
from Debian); every host of the fabric routes each node's /28 to that node.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

from bgplb_lab.daemons import wait_for
from bgplb_lab.netns import run

CGROUP = Path("/sys/fs/cgroup")
# Where a node keeps state: bound to a private directory per node.
PRIVATE = (
    "var/lib/kubelet",
    "var/lib/containerd",
    "var/lib/cni",
    "var/lib/bgplb",
    "var/log/pods",
    "var/log/containers",
    "run/containerd",
    "run/bgplb",
    "etc/kubernetes",
    "etc/cni/net.d",
)
# kubelet changes these machine-wide; the lab puts them back when it goes.
GLOBAL_SYSCTLS = ("vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops")
CNI_BIN = "/usr/lib/cni"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


def cgroup_hierarchies() -> list[Path]:
    """The cgroup v1 hierarchies kubelet uses (every mounted controller)."""
    return [p for p in sorted(CGROUP.iterdir()) if p.is_dir() and p.name != "unified"]


def make_cgroup_root(name: str) -> None:
    for hierarchy in cgroup_hierarchies():
        path = hierarchy / name
        path.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":  # a new cpuset is empty until given cpus and mems
            for key in ("cpuset.cpus", "cpuset.mems"):
                (path / key).write_text((hierarchy / key).read_text())


def cgroup_pids(name: str) -> set[int]:
    pids: set[int] = set()
    for hierarchy in cgroup_hierarchies():
        # os.walk skips a directory that goes away while it walks (a Pod's cgroup
        # removed by its runtime meanwhile); Path.rglob raised, and the teardown
        # stopped with the node half down (CI, seed example 2).
        for path, _, files in os.walk(hierarchy / name):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError):
                    text = (Path(path) / "cgroup.procs").read_text()
                    pids.update(int(p) for p in text.split())
    return pids


def remove_cgroup_root(name: str) -> None:
    """Kill what is left in the node's cgroups (Pods whose shim is gone), then remove
    them, deepest first."""
    for _ in range(50):
        pids = cgroup_pids(name)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    # The unified hierarchy too: the lab makes nothing there, but the node's cgroups
    # show up in it as well (hybrid mode), and 285 empty ones were left on this machine.
    for hierarchy in [*cgroup_hierarchies(), CGROUP / "unified"]:
        root = hierarchy / name
        if not root.is_dir():
            continue
        dirs = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in [*dirs, root]:
            with contextlib.suppress(OSError):
                d.rmdir()


def read_sysctls() -> dict[str, str]:
    return {key: run("sysctl", "-n", key).strip() for key in GLOBAL_SYSCTLS}


def restore_sysctls(saved: dict[str, str]) -> None:
    for key, value in saved.items():
        run("sysctl", "-qw", f"{key}={value}", check=False)


@dataclass
class NodeConfig:
    """What one node needs to join: its addresses and the cluster's."""

    name: str
    ip: str
    netns: str
    pod_cidr: IPv4Network
    cluster_cidr: IPv4Network
    server: str
    """The API server URL kubelet and kube-proxy use (the control-plane VIP)."""
    cgroup_root: str
    control_plane: bool = False


class KubeNode:
    """One node: its holder process (mount and UTS namespace) and the daemons in it."""

    def __init__(self, config: NodeConfig, workdir: Path, bin_dir: Path) -> None:
        self.config = config
        self.dir = workdir
        self.bin = bin_dir

    # --- paths -------------------------------------------------------------------

    @property
    def holder_pid(self) -> int:
        return int((self.dir / "holder.pid").read_text())

    def nsenter(self, *cmd: str) -> list[str]:
        """A command line that runs `cmd` inside this node (network, mount, UTS)."""
        return ["nsenter", "-t", str(self.holder_pid), "-n", "-m", "-u", "--", *cmd]

    def exec(self, *cmd: str, check: bool = True, timeout: float = 60) -> str:
        return run(*self.nsenter(*cmd), check=check, timeout=timeout)

    # --- set-up ------------------------------------------------------------------

    def write_files(self, ca: Path, kubelet: tuple[Path, Path], proxy: tuple[Path, Path]) -> None:
        """containerd's, kubelet's and kube-proxy's configuration, the CNI network and
        kubeconfigs (the kubelet's and kube-proxy's client certificates and keys)."""
        c = self.config
        self.dir.mkdir(parents=True, exist_ok=True)
        for private in PRIVATE:
            (self.dir / "root" / private).mkdir(parents=True, exist_ok=True)
        (self.dir / "root/etc/kubernetes/manifests").mkdir(exist_ok=True)
        (self.dir / "containerd.toml").write_text(
            f"""version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # The VM withholds CAP_SYS_RESOURCE: runc cannot lower oom_score_adj otherwise.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "/etc/cni/net.d"
"""
        )
        cni = {
            "cniVersion": "0.4.0",
            "name": "lab",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": str(c.pod_cidr)}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (self.dir / "root/etc/cni/net.d/10-lab.conflist").write_text(json.dumps(cni, indent=2))
        for name, (cert, key) in (("kubeconfig", kubelet), ("kube-proxy.kubeconfig", proxy)):
            kubeconfig = self.dir / name
            kubeconfig.write_text(
                "apiVersion: v1\nkind: Config\n"
                f"clusters:\n- name: lab\n  cluster:\n    server: {c.server}\n"
                f"    certificate-authority: {ca}\n"
                f"users:\n- name: me\n  user:\n    client-certificate: {cert}\n"
                f"    client-key: {key}\n"
                "contexts:\n- name: lab\n  context: {cluster: lab, user: me}\n"
                "current-context: lab\n"
            )
            kubeconfig.chmod(0o600)
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": c.ip,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{c.cgroup_root}",
            "failSwapOn": False,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(ca)},
            },
            "authorization": {"mode": "Webhook"},
            "staticPodPath": "/etc/kubernetes/manifests",
            "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
            "resolvConf": "/etc/resolv.conf",
            # Every node sees the whole machine: keep eviction and image GC out of
            # the way of a lab that shares one disk and one memory.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "nodeStatusUpdateFrequency": "2s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "2s",
            "serializeImagePulls": False,
        }
        (self.dir / "kubelet.yaml").write_text(json.dumps(config, indent=2))
        proxy_config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clusterCIDR": str(c.cluster_cidr),
            "hostnameOverride": c.name,
            "bindAddress": c.ip,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            "clientConnection": {"kubeconfig": str(self.dir / "kube-proxy.kubeconfig")},
            "conntrack": {"maxPerCore": 0},  # leave the machine-wide conntrack table alone
        }
        (self.dir / "kube-proxy.yaml").write_text(json.dumps(proxy_config, indent=2))

    def _holder_script(self) -> str:
        binds = "\n".join(
            f"mkdir -p /{p} && mount --bind {self.dir}/root/{p} /{p}" for p in PRIVATE
        )
        return f"""set -e
mkdir -p {self.dir}/cgroup
mount --rbind /sys/fs/cgroup {self.dir}/cgroup
mount -t sysfs sysfs /sys
mount --rbind {self.dir}/cgroup /sys/fs/cgroup
{binds}
mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns
hostname {self.config.name}
echo $$ > {self.dir}/holder.pid
exec sleep infinity
"""

    def start(self) -> None:
        """The holder, then containerd (waited for), then kubelet and kube-proxy."""
        self.start_holder()
        self.start_containerd()
        self.start_kubelet()
        self.start_kube_proxy()

    def start_holder(self) -> None:
        """The process that holds this node's mount and UTS namespaces."""
        make_cgroup_root(self.config.cgroup_root)
        (self.dir / "holder.pid").unlink(missing_ok=True)
        subprocess.Popen(
            [
                "nsenter",
                f"--net=/run/netns/{self.config.netns}",
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "slave",
                "sh",
                "-c",
                self._holder_script(),
            ],
            stdout=(self.dir / "holder.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(f"node {self.config.name}'s namespaces", self._holder_ready, timeout=10)

    def _holder_ready(self) -> bool:
        if not (self.dir / "holder.pid").exists():
            return False
        return Path(f"/proc/{self.holder_pid}/cmdline").read_bytes().startswith(b"sleep")

    def _spawn(self, name: str, cmd: list[str]) -> None:
        subprocess.Popen(
            self.nsenter(*cmd),
            stdout=(self.dir / f"{name}.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_containerd(self) -> None:
        self._spawn("containerd", ["containerd", "--config", str(self.dir / "containerd.toml")])
        wait_for(
            f"containerd on {self.config.name}",
            lambda: self.exec("ctr", "version", check=False, timeout=10).count("Version") == 2,
            timeout=30,
            every=0.2,
        )

    def start_kubelet(self) -> None:
        c = self.config
        cmd = [
            str(self.bin / "kubelet"),
            f"--config={self.dir / 'kubelet.yaml'}",
            f"--kubeconfig={self.dir / 'kubeconfig'}",
            f"--hostname-override={c.name}",
            f"--node-ip={c.ip}",
            "--v=1",
        ]
        if c.control_plane:
            cmd.append("--register-with-taints=node-role.kubernetes.io/control-plane=:NoSchedule")
        self._spawn("kubelet", cmd)

    def start_kube_proxy(self) -> None:
        cmd = [str(self.bin / "kube-proxy"), f"--config={self.dir / 'kube-proxy.yaml'}", "--v=1"]
        self._spawn("kube-proxy", cmd)

    def pids(self, needle: str) -> list[int]:
        """Processes of this node whose command starts with `needle` (a binary path or
        name), children of the node's namespaces included."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv0 = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
                same = os.readlink(entry / "ns/mnt") == os.readlink(
                    f"/proc/{self.holder_pid}/ns/mnt"
                )
            except OSError:
                continue
            if same and (argv0 == needle or argv0.endswith(f"/{needle}")):
                found.append(int(entry.name))
        return found

    def stop_daemon(self, name: str, sig: int = signal.SIGTERM) -> None:
        for pid in self.pids(name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def kill(self) -> None:
        """Everything of this node: its daemons, its Pods, its namespaces' holder."""
        with contextlib.suppress(OSError, ValueError):
            for pid in self.pids_in_mount_namespace():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        remove_cgroup_root(self.config.cgroup_root)

    def pids_in_mount_namespace(self) -> list[int]:
        mine = os.readlink(f"/proc/{self.holder_pid}/ns/mnt")
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(entry / "ns/mnt") == mine:
                        found.append(int(entry.name))
        return found

    def import_image(self, archive: Path) -> None:
        self.exec(
            "ctr", "-n", "k8s.io", "images", "import", "--no-unpack", str(archive), timeout=300
        )
