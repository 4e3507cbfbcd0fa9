"""`bgplb advertise`: the seed's bgpadvertiser, by hand or as a static Pod.

Starts a gobgpd of its own (gRPC on loopback only), peers from `localIP` with each
configured peer, advertises the VIP with this node as next hop, logs every session
state change as one JSON line, and serves health on 127.0.0.1:8080 (200 once every
session is Established). Ctrl-C withdraws the VIP, stops gobgpd and exits: nothing
is left running.

With `--readyz URL` the VIP is advertised only while that URL (the local
kube-apiserver's /readyz) answers 200; the sessions stay up either way. That is how
the `bgpadvertiser` static Pod (bgplb.static_pod) serves the control-plane VIP from
each control-plane node, before the cluster exists and after.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.client
import ipaddress
import logging
import shutil
import signal
import ssl
import subprocess
import tempfile
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import yaml
from aiohttp import web
from pydantic import Field, ValidationError

from bgplb.agent.speaker.gobgp import GoBGPSpeaker
from bgplb.agent.speaker.model import PathConfig, PeerConfig, PeerStatus, SpeakerConfig
from bgplb.api.common import ASN, ApiModel, IPv4
from bgplb.core.validate import FieldError, error_reason, field_path
from bgplb.gobgpd import UNIX, clear_stale, socket_of

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
async def local_gobgpd(
    log_level: str = "warn", api: str | None = None
) -> AsyncIterator[tuple[GoBGPSpeaker, Path]]:
    """A gobgpd of our own, stopped on exit. gRPC on a private unix socket, or on
    `api` (a unix:// target, or host:port on loopback) where the node agent reads
    session state from it."""
    workdir = Path(tempfile.mkdtemp(prefix="bgplb-gobgpd-"))
    log_path = workdir / "gobgpd.log"
    target = api or f"{UNIX}{workdir / 'gobgpd.sock'}"
    socket_path = socket_of(target)
    if socket_path is not None:
        clear_stale(socket_path)
    gobgpd = subprocess.Popen(
        ["gobgpd", "--api-hosts", target, "-l", log_level, "--log-plain", "--pprof-disable"],
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )
    speaker = None
    try:
        if socket_path is not None:
            for _ in range(100):
                if socket_path.exists():
                    break
                await asyncio.sleep(0.05)
        speaker = GoBGPSpeaker(target)
        await _wait_serving(speaker, gobgpd)
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


async def _wait_serving(speaker: GoBGPSpeaker, gobgpd: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if gobgpd.poll() is not None:
            raise RuntimeError(f"gobgpd exited with {gobgpd.returncode}")
        with contextlib.suppress(Exception):
            await speaker.adopt()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("gobgpd did not answer on its gRPC address")


class ReadyzProbe:
    """Probes of the local kube-apiserver's /readyz, as the kubelet probes it: only
    the answer matters (its certificate names the VIP, not this address). One
    connection is kept open between probes: a fresh TLS context and handshake four
    times a second cost each advertiser ~11 % of a core while idle (measured in the
    lab), and the API server as much again."""

    def __init__(self, url: str, timeout: float = 0.5) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r}: expected an http(s) URL")
        self.url = url
        self.host, self.port = parts.hostname, parts.port
        self.path = parts.path or "/"
        self.https = parts.scheme == "https"
        self.timeout = timeout
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE
        self.connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self.context
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def __call__(self) -> bool:
        if self.connection is None:
            self.connection = self._connect()
        try:
            self.connection.request("GET", self.path)
            response = self.connection.getresponse()
            response.read()
            if response.will_close:
                self.close()
            return bool(response.status == 200)
        except (OSError, http.client.HTTPException):
            # Whatever a dying or half-started server answers is "not ready"; the
            # next probe connects again. An exception escaping here would end the
            # follower and freeze the route as it is.
            self.close()
            return False

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


async def _follow_readyz(
    speaker: GoBGPSpeaker, with_vip: SpeakerConfig, without: SpeakerConfig, probe: ReadyzProbe
) -> None:
    """Advertise the VIP while the probe answers 200, withdraw it while it does not. Two
    probes in a row decide a change, so one slow answer does not flap the route."""
    ready: bool | None = None
    streak = 0
    while True:
        now = await asyncio.to_thread(probe)
        streak = streak + 1 if now != ready else 0
        if ready is None or (now != ready and streak >= 2):
            ready, streak = now, 0
            await speaker.apply(with_vip if ready else without)
            log.info("local API server readiness", extra={"ready": ready, "url": probe.url})
        await asyncio.sleep(0.25)


async def advertise(
    config: AdvertiserConfig,
    vip: ipaddress.IPv4Address,
    health_port: int,
    *,
    readyz: str | None = None,
    api: str | None = None,
) -> None:
    try:
        probe = None if readyz is None else ReadyzProbe(readyz)
    except ValueError as e:
        raise SystemExit(f"--readyz: {e}") from None
    async with local_gobgpd(api=api) as (speaker, _):
        desired = speaker_config(config, vip)
        without = dataclasses.replace(desired, paths=frozenset())
        states: dict[ipaddress.IPv4Address, str] = dict.fromkeys(desired.peers, "Idle")
        runner = await _health(states, health_port)
        log.info("Health status HTTP server started", extra={"address": f"127.0.0.1:{health_port}"})
        follower: asyncio.Task[None] | None = None
        try:
            if probe is None:
                await speaker.apply(desired)
            else:
                await speaker.apply(without)
                follower = asyncio.create_task(_follow_readyz(speaker, desired, without, probe))
            log.info(
                "advertising" if probe is None else "advertising while the API server is ready",
                extra={
                    "vip": str(vip),
                    "localIP": str(config.local_ip),
                    "peers": [str(p) for p in desired.peers],
                },
            )
            async for status in speaker.watch():
                _transition(states, status)
        finally:
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
            with contextlib.suppress(Exception):
                await speaker.apply(SpeakerConfig(config.local_asn, config.local_ip))
                log.info("withdrawn", extra={"vip": str(vip)})
            await runner.cleanup()
            if probe is not None:
                probe.close()


def _transition(states: dict[ipaddress.IPv4Address, str], status: PeerStatus) -> None:
    old = states.get(status.address)
    if old != status.state:
        states[status.address] = status.state
        log.info(
            "session state changed",
            extra={"peer": str(status.address), "from": old, "to": status.state},
        )


def config_from_flags(local_ip: str, local_asn: int, peers: list[str]) -> AdvertiserConfig:
    """The config given as flags (--local-ip, --local-asn, --peer IP:ASN ...), checked
    as the config file is."""
    parsed = []
    for i, text in enumerate(peers):
        ip, _, asn = text.partition(":")
        if not asn.isdigit():
            raise SystemExit(f"--peer[{i}]: {text!r}: expected PEER_IP:PEER_ASN")
        parsed.append({"peerIP": ip, "peerASN": int(asn)})
    data = {"localIP": local_ip, "localASN": local_asn, "peers": parsed}
    try:
        config = AdvertiserConfig.model_validate(data)
    except ValidationError as e:
        errors = [FieldError(field_path(err["loc"]), error_reason(err)) for err in e.errors()]
        raise SystemExit("\n".join(str(error) for error in errors)) from None
    for i, peer in enumerate(config.peers):
        if peer.peer_asn == config.local_asn:
            raise SystemExit(f"--peer[{i}]: peer ASN equals --local-asn: only eBGP is supported")
    return config


def run(
    config: AdvertiserConfig,
    vip_text: str,
    health_port: int,
    *,
    readyz: str | None = None,
    api: str | None = None,
) -> int:
    try:
        vip = ipaddress.IPv4Address(vip_text)
    except ValueError:
        raise SystemExit(f"--advertise-ip: {vip_text!r} is not an IPv4 address") from None

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await advertise(config, vip, health_port, readyz=readyz, api=api)

    asyncio.run(main())
    return 0
