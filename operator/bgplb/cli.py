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


def _advertise(args: argparse.Namespace) -> int:
    from bgplb.advertise import run
    from bgplb.logs import setup_logging

    setup_logging()
    return run(args.config, args.advertise_ip, args.health_port)


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
    adv = sub.add_parser(
        "advertise", help="advertise a VIP to peers by hand (the seed's bgpadvertiser)"
    )
    adv.add_argument("--config", required=True, type=Path, help="localIP, localASN, peers[]")
    adv.add_argument("--advertise-ip", required=True, help="the VIP to advertise")
    adv.add_argument("--health-port", type=int, default=8080)
    adv.set_defaults(func=_advertise)
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
