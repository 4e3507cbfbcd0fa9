"""`bgplb-lab up | down | status | kubectl`: the lab from the command line.

The lab is its own distribution (lab/pyproject.toml), so the shipped images never
carry it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from bgplb_lab.kube import kube_binary
from bgplb_lab.kubelets import KubeletLab
from bgplb_lab.topology import Lab

DEFAULT_DIR = Path(os.environ.get("BGPLB_LAB_DIR", "/tmp/bgplb-lab"))


def _attach(workdir: Path) -> Lab:
    """The lab a previous `up` left running in `workdir`, of the kind it was."""
    saved = json.loads((workdir / "lab.json").read_text())
    kind = KubeletLab if saved.get("kubelets") else Lab
    return kind(workdir, prefix=saved["prefix"], example=saved["example"])


def _print_views(lab: Lab) -> None:
    for block in lab.views():
        print(block.rstrip("\n"))


def up(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("bgplb-lab needs root: it builds network namespaces", file=sys.stderr)
        return 2
    root = Path(__file__).resolve().parents[2]
    subprocess.run(["bash", str(root / "scripts" / "install-system-deps.sh")], check=True)
    kind = Lab if args.processes else KubeletLab
    lab = kind(args.dir, prefix=args.prefix, example=args.example).up()
    print("waiting for sessions and routes ...", flush=True)
    try:
        lab.wait_ready(timeout=args.timeout)
    except TimeoutError as e:
        print(f"{e}\nlogs: {args.dir}", file=sys.stderr)
        _print_views(lab)
        return 1
    _print_views(lab)
    print(
        f"\nlab up (seed example {args.example}); logs in {args.dir}; `bgplb-lab down` removes it"
    )
    return 0


def down(args: argparse.Namespace) -> int:
    if (args.dir / "lab.json").exists():
        _attach(args.dir).down()
    else:  # whatever a failed `up` left under this prefix, nodes and cgroups included
        KubeletLab(args.dir, prefix=args.prefix, log=False).down()
    print("lab removed")
    return 0


def status(args: argparse.Namespace) -> int:
    if not (args.dir / "lab.json").exists():
        print(f"no lab in {args.dir}; `bgplb-lab up` builds one", file=sys.stderr)
        return 1
    _print_views(_attach(args.dir))
    return 0


def kubectl(args: argparse.Namespace) -> int:
    lab = _attach(args.dir)
    cmd = ["ip", "netns", "exec", lab.api.netns or "", str(kube_binary("kubectl"))]
    cmd += [f"--kubeconfig={lab.api.kubeconfig}", *args.args]
    return subprocess.run(cmd, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    lab = argparse.ArgumentParser(
        prog="bgplb-lab", description="the local lab: a whole cluster in network namespaces"
    )
    lab.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="logs and state")
    lab.add_argument(
        "--prefix", default="bgplab-", help="network namespace prefix (to run two labs at once)"
    )
    verbs = lab.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("up", help="install what is missing, build the lab, show it working")
    p.add_argument("--example", type=int, choices=(1, 2, 3), default=3, help="seed topology")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument(
        "--processes",
        action="store_true",
        help="the fast process-level lab: controller and agents as processes, no kubelets",
    )
    p.set_defaults(func=up)
    verbs.add_parser("down", help="remove every namespace and process").set_defaults(func=down)
    verbs.add_parser("status", help="print the views again").set_defaults(func=status)
    k = verbs.add_parser("kubectl", help="kubectl against the lab's API server")
    k.set_defaults(func=kubectl)
    # Everything after `kubectl` is kubectl's (its -n, -o ... are not ours).
    argv = list(sys.argv[1:] if argv is None else argv)
    rest: list[str] = []
    if "kubectl" in argv:
        at = argv.index("kubectl")
        argv, rest = argv[: at + 1], argv[at + 1 :]
    args = lab.parse_args(argv)
    if args.verb == "kubectl":
        args.args = rest
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
