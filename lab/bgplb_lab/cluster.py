"""The control-plane processes a real cluster needs beside kube-apiserver:
kube-controller-manager (garbage collector, DaemonSet, Deployment, endpoints, node
lifecycle, service-account token and root-CA publishing) and kube-scheduler, both
from the same Kubernetes version, run in the API server's namespace.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

from bgplb_lab.daemons import stop_processes
from bgplb_lab.kube import KubeAPI, free_port, kube_binary


@dataclass
class ControlPlane:
    api: KubeAPI
    cluster_cidr: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def _start(self, name: str, args: list[str]) -> None:
        cmd = [str(kube_binary(name)), *args]
        if self.api.netns:
            cmd = ["ip", "netns", "exec", self.api.netns, *cmd]
        self.procs.append(
            subprocess.Popen(
                cmd,
                stdout=(self.api.workdir / f"{name}.log").open("ab"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def start(self) -> ControlPlane:
        work = self.api.workdir
        common = [
            f"--kubeconfig={self.api.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--v=1",
        ]
        self._start(
            "kube-controller-manager",
            [
                *common,
                f"--secure-port={free_port()}",
                f"--root-ca-file={work / 'ca.crt'}",
                f"--service-account-private-key-file={work / 'sa.key'}",
                f"--cluster-cidr={self.cluster_cidr}",
                "--use-service-account-credentials=true",
                # Node failure is the drills' business: mark a silent node NotReady
                # soon, as a tuned production cluster would.
                "--node-monitor-grace-period=20s",
                "--node-monitor-period=2s",
                "--concurrent-gc-syncs=5",
            ],
        )
        self._start("kube-scheduler", [*common, f"--secure-port={free_port()}"])
        return self

    def stop(self) -> None:
        stop_processes(*self.procs, timeout=10)
        self.procs.clear()
