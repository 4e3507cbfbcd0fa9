"""`bgplb advertise --config FILE --advertise-ip VIP`: the seed's bgpadvertiser.

Starts a gobgpd of its own (gRPC on 127.0.0.1 only), peers from `localIP` with each
configured peer, advertises the VIP with this node as next hop, logs every session
state change as one JSON line, and serves health on 127.0.0.1:8080 (200 once every
session is Established). Ctrl-C withdraws the VIP, stops gobgpd and exits: nothing
is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import yaml
from aiohttp import web
from pydantic import Field, ValidationError

from bgplb.agent.speaker.gobgp import GoBGPSpeaker
from bgplb.agent.speaker.model import PathConfig, PeerConfig, PeerStatus, SpeakerConfig
from bgplb.api.common import ASN, ApiModel, IPv4
from bgplb.core.validate import FieldError, error_reason, field_path

log = logging.getLogger("bgplb.advertise")


class AdvertiserPeer(ApiModel):
    peer_ip: IPv4
    peer_asn: ASN


class AdvertiserConfig(ApiModel):
    """The seed's /tmp/bgpadvertiser.conf."""

    local_ip: IPv4
    local_asn: ASN
    peers: list[AdvertiserPeer] = Field(min_length=1)


def load_config(path: Path) -> AdvertiserConfig:
    """The config, or SystemExit naming every bad field."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise SystemExit(f"{path}: cannot read: {e}") from None
    try:
        config = AdvertiserConfig.model_validate(data)
    except ValidationError as e:
        errors = [FieldError(field_path(err["loc"]), error_reason(err)) for err in e.errors()]
        raise SystemExit("\n".join(f"{path}: {error}" for error in errors)) from None
    for i, peer in enumerate(config.peers):
        if peer.peer_asn == config.local_asn:
            raise SystemExit(f"{path}: peers[{i}].peerASN: equals localASN: only eBGP is supported")
    return config


def speaker_config(config: AdvertiserConfig, vip: ipaddress.IPv4Address) -> SpeakerConfig:
    peers = {
        p.peer_ip: PeerConfig(
            p.peer_ip,
            p.peer_asn,
            config.local_asn,
            config.local_ip,
            connect_retry=1,
            description="bgplb-advertise",
        )
        for p in config.peers
    }
    paths = frozenset({PathConfig(ipaddress.IPv4Network(vip), config.local_ip)})
    return SpeakerConfig(config.local_asn, config.local_ip, peers, paths)


async def _health(states: dict[ipaddress.IPv4Address, str], port: int) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        up = bool(states) and all(s == "Established" for s in states.values())
        body = "\n".join(f"{ip} {s}" for ip, s in sorted(states.items()))
        return web.Response(status=200 if up else 503, text=body + "\n")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@contextlib.asynccontextmanager
async def local_gobgpd(log_level: str = "warn") -> AsyncIterator[tuple[GoBGPSpeaker, Path]]:
    """A gobgpd of our own (gRPC on a private unix socket), stopped on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="bgplb-gobgpd-"))
    socket_path, log_path = workdir / "gobgpd.sock", workdir / "gobgpd.log"
    gobgpd = subprocess.Popen(
        ["gobgpd", "--api-hosts", f"unix://{socket_path}", "-l", log_level, "--log-plain"],
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )
    speaker = None
    try:
        for _ in range(100):
            if socket_path.exists():
                break
            await asyncio.sleep(0.05)
        speaker = GoBGPSpeaker(f"unix://{socket_path}")
        yield speaker, log_path
    finally:
        if speaker is not None:
            await speaker.close()
        gobgpd.terminate()
        try:
            gobgpd.wait(5)
        except subprocess.TimeoutExpired:
            gobgpd.kill()
            gobgpd.wait()
        shutil.rmtree(workdir, ignore_errors=True)


async def advertise(config: AdvertiserConfig, vip: ipaddress.IPv4Address, health_port: int) -> None:
    async with local_gobgpd() as (speaker, _):
        desired = speaker_config(config, vip)
        states: dict[ipaddress.IPv4Address, str] = dict.fromkeys(desired.peers, "Idle")
        runner = await _health(states, health_port)
        log.info("Health status HTTP server started", extra={"address": f"127.0.0.1:{health_port}"})
        try:
            await speaker.apply(desired)
            log.info(
                "advertising",
                extra={
                    "vip": str(vip),
                    "localIP": str(config.local_ip),
                    "peers": [str(p) for p in desired.peers],
                },
            )
            async for status in speaker.watch():
                _transition(states, status)
        finally:
            with contextlib.suppress(Exception):
                await speaker.apply(SpeakerConfig(config.local_asn, config.local_ip))
                log.info("withdrawn", extra={"vip": str(vip)})
            await runner.cleanup()


def _transition(states: dict[ipaddress.IPv4Address, str], status: PeerStatus) -> None:
    old = states.get(status.address)
    if old != status.state:
        states[status.address] = status.state
        log.info(
            "session state changed",
            extra={"peer": str(status.address), "from": old, "to": status.state},
        )


def run(config_path: Path, vip_text: str, health_port: int) -> int:
    try:
        vip = ipaddress.IPv4Address(vip_text)
    except ValueError:
        raise SystemExit(f"--advertise-ip: {vip_text!r} is not an IPv4 address") from None
    config = load_config(config_path)

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await advertise(config, vip, health_port)

    asyncio.run(main())
    return 0
