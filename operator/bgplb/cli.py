"""The `bgplb` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml


def _gen_crds(args: argparse.Namespace) -> int:
    from bgplb.api.crd import render_all

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rendered = render_all()
    for stale in out.glob("*.yaml"):
        if stale.name not in rendered:
            stale.unlink()
    for name, text in rendered.items():
        (out / name).write_text(text)
    print(f"wrote {len(rendered)} CRDs to {out}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from bgplb.api import BGPLoadBalancer, BGPPeer, NetworkGatewayGroup
    from bgplb.core.validate import Config, parse, validate

    docs: list[tuple[str, dict[str, Any]]] = []
    for path in args.files:
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if doc:
                docs.append((path, doc))
    # Cross-object rules see the other objects given on the same command line.
    parsed = [parse(doc)[0] for _, doc in docs]
    config = Config(
        load_balancer=next((r for r in parsed if isinstance(r, BGPLoadBalancer)), None),
        gateway=next((r for r in parsed if isinstance(r, NetworkGatewayGroup)), None),
        peers=[r for r in parsed if isinstance(r, BGPPeer)],
    )
    failed = 0
    for path, doc in docs:
        _, errors = validate(doc, config)
        name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        for error in errors:
            print(f"{path}: {name}: {error}", file=sys.stderr)
        failed += bool(errors)
    print(f"{len(docs) - failed} valid, {failed} invalid")
    return 1 if failed else 0


def _convert(args: argparse.Namespace) -> int:
    from bgplb.convert import convert

    docs = [d for path in args.files for d in yaml.safe_load_all(Path(path).read_text()) if d]
    result = convert(docs, args.namespace, args.floating_ip)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    text = yaml.safe_dump_all(result.objects, sort_keys=False)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    if not result.objects:
        print("nothing converted", file=sys.stderr)
        return 1
    return 0


def _gobgpd(args: argparse.Namespace) -> int:
    from bgplb.gobgpd import exec_gobgpd

    extra = list(args.gobgpd_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    if any(a.startswith("--api-hosts") for a in extra):
        print("gobgpd: --api-hosts is set from --socket (gRPC on TCP is refused)", file=sys.stderr)
        return 2
    return exec_gobgpd(args.socket, extra)


def _bfd(args: argparse.Namespace) -> int:
    import asyncio

    from bgplb.agent.bfd_server import serve
    from bgplb.logs import setup_logging

    setup_logging()
    asyncio.run(serve(args.socket))
    return 0


def _advertise(args: argparse.Namespace) -> int:
    from bgplb.advertise import config_from_flags, load_config, run
    from bgplb.logs import setup_logging

    if args.config is not None:
        config = load_config(args.config)
    elif args.local_ip and args.local_asn and args.peer:
        config = config_from_flags(args.local_ip, args.local_asn, args.peer)
    else:
        raise SystemExit("--config: required (or --local-ip, --local-asn and --peer)")
    setup_logging()
    return run(config, args.advertise_ip, args.health_port, readyz=args.readyz, api=args.api)


def _static_pod(args: argparse.Namespace) -> int:
    from bgplb.static_pod import manifest

    text = manifest(args.config, args.node_ip, args.image, apiserver_port=args.apiserver_port)
    if args.output is None:
        print(text, end="")
    else:
        tmp = args.output.with_name(f".{args.output.name}.tmp")
        tmp.write_text(text)
        tmp.rename(args.output)  # the kubelet never reads half a manifest
    return 0


def _preflight(args: argparse.Namespace) -> int:
    from bgplb.preflight import run

    return run(args.config, args.advertise_ip, args.timeout, args.node_ip)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bgplb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("gen-crds", help="write the CRDs generated from the API models")
    gen.add_argument("--output", default="crds")
    gen.set_defaults(func=_gen_crds)
    val = sub.add_parser("validate", help="check manifests as the admission webhook will")
    val.add_argument("files", nargs="+")
    val.set_defaults(func=_validate)
    conv = sub.add_parser(
        "convert",
        help="turn an Anthos bare-metal or a MetalLB configuration into bgplb's objects",
    )
    conv.add_argument("files", nargs="+")
    conv.add_argument("--namespace", default="kube-system", help="bgplb's namespace")
    conv.add_argument(
        "--floating-ip", action="append", default=[],
        help="(MetalLB) an address the sessions start from; give two or more",
    )  # fmt: skip
    conv.add_argument("--output", "-o", help="write the objects here instead of stdout")
    conv.set_defaults(func=_convert)
    adv = sub.add_parser(
        "advertise", help="advertise a VIP to peers by hand (the seed's bgpadvertiser)"
    )
    adv.add_argument("--config", type=Path, help="localIP, localASN, peers[]")
    adv.add_argument("--local-ip", help="instead of --config: this node's address")
    adv.add_argument("--local-asn", type=int, help="instead of --config: the cluster's ASN")
    adv.add_argument(
        "--peer", action="append", help="instead of --config: PEER_IP:PEER_ASN (repeat)"
    )
    adv.add_argument("--advertise-ip", required=True, help="the VIP to advertise")
    adv.add_argument("--health-port", type=int, default=8080)
    adv.add_argument("--readyz", help="advertise only while this URL answers 200")
    adv.add_argument(
        "--api",
        help="gobgpd's gRPC target where the node agent reads session state: "
        "unix:///path (the static Pod) or a loopback host:port (default: private)",
    )
    adv.set_defaults(func=_advertise)
    gd = sub.add_parser(
        "gobgpd",
        help="run gobgpd with its gRPC on a unix socket (the speaker container)",
        description="Clears a socket left by a gobgpd that died, then becomes gobgpd "
        "serving gRPC on it; arguments after -- go to gobgpd.",
    )
    gd.add_argument("--socket", type=Path, required=True, help="the unix socket's path")
    gd.add_argument("gobgpd_args", nargs=argparse.REMAINDER, help="-- then gobgpd's own")
    gd.set_defaults(func=_gobgpd)
    bfd = sub.add_parser(
        "bfd",
        help="run this node's BFD sessions, driven by the agent over a unix socket "
        "(the speaker Pod's bfd container)",
    )
    bfd.add_argument("--socket", type=Path, required=True, help="the unix socket's path")
    bfd.set_defaults(func=_bfd)
    sp = sub.add_parser(
        "static-pod",
        help="write this control-plane node's bgpadvertiser static Pod manifest",
        description="From a BGPLoadBalancer manifest (spec.controlPlane): the Pod for "
        "/etc/kubernetes/manifests that advertises the control-plane VIP from this node "
        "while its kube-apiserver is ready.",
    )
    sp.add_argument("--config", required=True, type=Path, help="a BGPLoadBalancer manifest")
    sp.add_argument("--node-ip", required=True, help="this control-plane node's address")
    sp.add_argument("--image", required=True, help="the bgplb agent image")
    sp.add_argument("--apiserver-port", type=int, default=6443, help="the local API server's")
    sp.add_argument("--output", type=Path, help="write here (default: standard output)")
    sp.set_defaults(func=_static_pod)
    pre = sub.add_parser("preflight", help="check each peer: session, route accepted, traffic back")
    pre.add_argument(
        "--config",
        required=True,
        type=Path,
        help="localIP, localASN, peers[]; or, with --node-ip, a BGPLoadBalancer manifest",
    )
    pre.add_argument("--node-ip", help="check this node's controlPlane peers of a BGPLoadBalancer")
    pre.add_argument("--advertise-ip", help="the VIP to test with (default: controlPlane.vip)")
    pre.add_argument("--timeout", type=float, default=25.0, help="seconds to wait for sessions")
    pre.set_defaults(func=_preflight)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def controller_main() -> int:
    from bgplb.controller.main import main as run_controller

    return run_controller()


def agent_main() -> int:
    from bgplb.agent.main import main as run_agent

    return run_agent()


if __name__ == "__main__":
    sys.exit(main())
