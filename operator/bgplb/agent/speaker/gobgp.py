"""Speaker over gobgpd's gRPC API (v3, `apipb.GobgpApi`).

The traps this driver is shaped around (../shared/GOBGP-NOTES.md):
- a second StartBgp on a running daemon empties its RIB: GetBgp first;
- UpdatePeer replaces the whole peer: always send a complete one;
- `DeletePath` with neither path nor uuid deletes every path: never send that;
- gobgpd keeps no state across restarts, and an agent restart must not flap anything.

So the driver never trusts its own memory across a reconnect: it reads what the
daemon holds (`adopt`), and sends only the difference to what is desired. After an
agent restart that difference is nothing; after a gobgpd restart it is everything.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Mapping
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

import grpc
from google.protobuf import any_pb2

from bgplb.agent.speaker.model import PathConfig, PeerConfig, PeerStatus, SpeakerConfig
from bgplb.agent.speaker.stubs import attribute_pb2 as attr
from bgplb.agent.speaker.stubs import gobgp_pb2 as api
from bgplb.agent.speaker.stubs import gobgp_pb2_grpc as api_grpc
from bgplb.api.bgpsession import SESSION_STATES, SessionState
from bgplb.core.attributes import Attributes

log = logging.getLogger(__name__)

IPV4_UNICAST = api.Family(afi=api.Family.AFI_IP, safi=api.Family.SAFI_UNICAST)
_NIL = "<nil>"


def _state(value: int) -> SessionState:
    # gobgp: 1 IDLE … 6 ESTABLISHED; 0 UNKNOWN reads as Idle.
    return SESSION_STATES[max(value, 1) - 1]


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def peer_message(p: PeerConfig) -> Any:
    """The complete gobgp Peer for a PeerConfig."""
    afi_safi = api.AfiSafi(
        config=api.AfiSafiConfig(family=IPV4_UNICAST, enabled=True),
        add_paths=api.AddPaths(config=api.AddPathsConfig(send_max=p.add_path_send_max)),
    )
    if p.graceful_restart:
        afi_safi.mp_graceful_restart.config.enabled = True
    return api.Peer(
        conf=api.PeerConf(
            neighbor_address=str(p.address),
            peer_asn=p.peer_asn,
            local_asn=p.local_asn,
            auth_password=p.password,
            description=p.description,
        ),
        ebgp_multihop=api.EbgpMultihop(enabled=p.multihop_ttl > 1, multihop_ttl=p.multihop_ttl),
        timers=api.Timers(
            config=api.TimersConfig(
                connect_retry=p.connect_retry,
                hold_time=p.hold_time,
                keepalive_interval=p.keepalive,
            )
        ),
        transport=api.Transport(local_address=str(p.local_address or "")),
        graceful_restart=api.GracefulRestart(
            enabled=p.graceful_restart, restart_time=p.restart_time if p.graceful_restart else 0
        ),
        afi_safis=[afi_safi],
    )


def peer_config(peer: Any) -> PeerConfig:
    """Read back what `peer_message` wrote (the inverse, on the fields we manage)."""
    local = peer.transport.local_address
    send_max = max((a.add_paths.config.send_max for a in peer.afi_safis), default=0)
    return PeerConfig(
        address=IPv4Address(peer.conf.neighbor_address),
        peer_asn=peer.conf.peer_asn,
        local_asn=peer.conf.local_asn,
        local_address=IPv4Address(local) if local and local != _NIL else None,
        multihop_ttl=peer.ebgp_multihop.multihop_ttl if peer.ebgp_multihop.enabled else 1,
        hold_time=peer.timers.config.hold_time,
        keepalive=peer.timers.config.keepalive_interval,
        connect_retry=peer.timers.config.connect_retry,
        password=peer.conf.auth_password,
        graceful_restart=peer.graceful_restart.enabled,
        restart_time=peer.graceful_restart.restart_time if peer.graceful_restart.enabled else 120,
        add_path_send_max=send_max,
        description=peer.conf.description,
    )


def path_message(p: PathConfig, asn: int) -> Any:
    """`asn`: the speaker's own, which an AS-path prepend repeats (gobgpd adds it once
    more itself towards eBGP peers)."""
    a = p.attributes
    pattrs = [
        _pack(attr.OriginAttribute(origin=0)),  # IGP
        _pack(attr.NextHopAttribute(next_hop=str(p.next_hop))),
    ]
    if a.as_path_prepend:
        segment = attr.AsSegment(type=attr.AsSegment.AS_SEQUENCE, numbers=[asn] * a.as_path_prepend)
        pattrs.append(_pack(attr.AsPathAttribute(segments=[segment])))
    if a.med is not None:
        pattrs.append(_pack(attr.MultiExitDiscAttribute(med=a.med)))
    if a.communities:
        pattrs.append(_pack(attr.CommunitiesAttribute(communities=list(a.communities))))
    if a.large_communities:
        large = [
            attr.LargeCommunity(global_admin=g, local_data1=l1, local_data2=l2)
            for g, l1, l2 in a.large_communities
        ]
        pattrs.append(_pack(attr.LargeCommunitiesAttribute(communities=large)))
    return api.Path(
        family=IPV4_UNICAST,
        nlri=_pack(
            attr.IPAddressPrefix(
                prefix=str(p.prefix.network_address), prefix_len=p.prefix.prefixlen
            )
        ),
        pattrs=pattrs,
        identifier=p.identifier,
    )


PATHS_PER_MESSAGE = 1000


def _path_stream(added: list[PathConfig], withdrawn: list[PathConfig], asn: int) -> list[Any]:
    """All path changes of one apply as one AddPathStream: adds first, so a prefix
    whose next hops change is never absent; withdrawals ride the same stream."""
    paths = [path_message(p, asn) for p in added]
    for p in withdrawn:
        message = path_message(p, asn)
        message.is_withdraw = True
        paths.append(message)
    return [
        api.AddPathStreamRequest(table_type=api.GLOBAL, paths=paths[i : i + PATHS_PER_MESSAGE])
        for i in range(0, len(paths), PATHS_PER_MESSAGE)
    ]


def path_config(path: Any) -> PathConfig | None:
    """A locally originated path as a PathConfig; None for anything else."""
    if path.neighbor_ip not in ("", _NIL) or path.is_from_external:
        return None
    prefix = attr.IPAddressPrefix()
    if not path.nlri.Unpack(prefix):
        return None
    next_hop = None
    prepend, med = 0, None
    communities: list[int] = []
    large: list[tuple[int, int, int]] = []
    for packed in path.pattrs:
        hop, as_path = attr.NextHopAttribute(), attr.AsPathAttribute()
        disc, comms, lcomms = (
            attr.MultiExitDiscAttribute(),
            attr.CommunitiesAttribute(),
            attr.LargeCommunitiesAttribute(),
        )
        if packed.Unpack(hop):
            next_hop = IPv4Address(hop.next_hop)
        elif packed.Unpack(as_path):
            prepend = sum(len(s.numbers) for s in as_path.segments)
        elif packed.Unpack(disc):
            med = disc.med
        elif packed.Unpack(comms):
            communities += comms.communities
        elif packed.Unpack(lcomms):
            large += [(c.global_admin, c.local_data1, c.local_data2) for c in lcomms.communities]
    if next_hop is None:
        return None
    return PathConfig(
        IPv4Network(f"{prefix.prefix}/{prefix.prefix_len}"),
        next_hop,
        path.identifier,
        Attributes.of(communities, large, prepend, med),
    )


POLICY = "bgplb-export"
"""The one global export policy: prefixes some neighbours must not get."""


def policies_request(denied: Mapping[IPv4Network, frozenset[IPv4Address]]) -> Any:
    """`denied` as gobgpd's policy: one statement per distinct set of neighbours left
    out, rejecting its prefixes towards them (a neighbor-set matches the destination
    of an export); everything else is accepted. SetPolicies replaces what was there."""
    groups: dict[frozenset[IPv4Address], list[IPv4Network]] = {}
    for prefix, neighbours in sorted(denied.items()):
        groups.setdefault(neighbours, []).append(prefix)
    sets, statements = [], []
    for i, (neighbours, prefixes) in enumerate(sorted(groups.items(), key=lambda g: g[1])):
        sets.append(
            api.DefinedSet(
                defined_type=api.PREFIX,
                name=f"bgplb-p{i}",
                prefixes=[
                    api.Prefix(
                        ip_prefix=str(p), mask_length_min=p.prefixlen, mask_length_max=p.prefixlen
                    )
                    for p in prefixes
                ],
            )
        )
        sets.append(
            api.DefinedSet(
                defined_type=api.NEIGHBOR,
                name=f"bgplb-n{i}",
                list=[f"{n}/32" for n in sorted(neighbours)],
            )
        )
        statements.append(
            api.Statement(
                name=f"bgplb-s{i}",
                conditions=api.Conditions(
                    prefix_set=api.MatchSet(type=api.MatchSet.ANY, name=f"bgplb-p{i}"),
                    neighbor_set=api.MatchSet(type=api.MatchSet.ANY, name=f"bgplb-n{i}"),
                ),
                actions=api.Actions(route_action=api.REJECT),
            )
        )
    policies = [api.Policy(name=POLICY, statements=statements)] if statements else []
    assignment = api.PolicyAssignment(
        name="global", direction=api.EXPORT, policies=policies, default_action=api.ACCEPT
    )
    return api.SetPoliciesRequest(defined_sets=sets, policies=policies, assignments=[assignment])


def denied_from(sets: list[Any]) -> dict[IPv4Network, frozenset[IPv4Address]]:
    """What `policies_request` wrote, read back from gobgpd's defined sets."""
    prefixes: dict[str, list[IPv4Network]] = {}
    neighbours: dict[str, frozenset[IPv4Address]] = {}
    for s in sets:
        if not s.name.startswith("bgplb-"):
            continue
        index = s.name[len("bgplb-") + 1 :]
        if s.defined_type == api.PREFIX:
            prefixes[index] = [IPv4Network(p.ip_prefix) for p in s.prefixes]
        elif s.defined_type == api.NEIGHBOR:
            neighbours[index] = frozenset(IPv4Interface(n).ip for n in s.list)
    out = {}
    for i, group in prefixes.items():
        for prefix in group if i in neighbours else ():
            out[prefix] = neighbours[i]
    return out


def peer_status(peer: Any) -> PeerStatus:
    state = _state(peer.state.session_state)
    uptime = peer.timers.state.uptime
    since = (
        dt.datetime.fromtimestamp(uptime.seconds, dt.UTC)
        if state == "Established" and uptime.seconds
        else None
    )
    received = sum(a.state.received for a in peer.afi_safis)
    advertised = sum(a.state.advertised for a in peer.afi_safis)
    return PeerStatus(
        address=IPv4Address(peer.conf.neighbor_address or peer.state.neighbor_address),
        state=state,
        established_since=since,
        received_prefixes=received,
        advertised_prefixes=advertised,
    )


class GoBGPSpeaker:
    """Drives one gobgpd over gRPC on loopback."""

    def __init__(
        self, target: str, *, listen_port: int = 0, interceptors: list[Any] | None = None
    ) -> None:
        """`listen_port` > 0: accept sessions the peers open (on IPv4, from configured
        neighbours only — gobgpd closes any other connection), so a ToR that knows a
        floating IP as a static neighbour brings its moved session up on its own next
        connect instead of waiting for gobgpd's first one (5 to 9 s in 3.10). 0: open
        every session from this side."""
        self.target = target
        self.listen_port = listen_port
        self.listening = 0
        """The port the daemon accepts sessions on, as last read or set (0: none)."""
        self._channel = grpc.aio.insecure_channel(target, interceptors=interceptors)
        self._stub = api_grpc.GobgpApiStub(self._channel)  # type: ignore[no-untyped-call]
        self._held: SpeakerConfig | None = None

    async def close(self) -> None:
        await self._channel.close()

    def forget(self) -> None:
        """Re-read the daemon before the next apply (after a reconnect or an error)."""
        self._held = None

    async def adopt(self) -> SpeakerConfig:
        """What the daemon holds now, as a SpeakerConfig."""
        bgp = await self._stub.GetBgp(api.GetBgpRequest())
        g = getattr(bgp, "global")  # `global` is a Python keyword
        self.listening = max(g.listen_port, 0)
        peers = {}
        async for reply in self._stub.ListPeer(api.ListPeerRequest()):
            config = peer_config(reply.peer)
            peers[config.address] = config
        paths = set()
        if g.asn:
            request = api.ListPathRequest(table_type=api.GLOBAL, family=IPV4_UNICAST)
            async for reply in self._stub.ListPath(request):
                for path in reply.destination.paths:
                    if (config_path := path_config(path)) is not None:
                        paths.add(config_path)
        router_id = IPv4Address(g.router_id) if g.asn else IPv4Address(0)
        sets = []
        if g.asn:
            for kind in (api.PREFIX, api.NEIGHBOR):
                listing = api.ListDefinedSetRequest(defined_type=kind)
                async for reply in self._stub.ListDefinedSet(listing):
                    sets.append(reply.defined_set)
        return SpeakerConfig(g.asn, router_id, peers, frozenset(paths), denied_from(sets))

    async def apply(self, desired: SpeakerConfig) -> int:
        try:
            return await self._apply(desired)
        except grpc.aio.AioRpcError:
            self.forget()
            raise

    async def _start(self, desired: SpeakerConfig) -> None:
        def request(port: int) -> api.StartBgpRequest:
            addresses = ["0.0.0.0"] if port > 0 else []  # IPv4 only, as every session is
            g = api.Global(
                asn=desired.asn,
                router_id=str(desired.router_id),
                listen_port=port,
                listen_addresses=addresses,
            )
            return api.StartBgpRequest(**{"global": g})

        self.listening = 0
        if self.listen_port <= 0:
            await self._stub.StartBgp(request(-1))
            return
        try:
            await self._stub.StartBgp(request(self.listen_port))
            self.listening = self.listen_port
        except grpc.aio.AioRpcError as e:
            # Port taken (another BGP daemon on the host network): sessions still come
            # up, opened from this side only; nothing that worked before is lost.
            log.warning(
                "BGP listener on port %d refused (%s): opening sessions from this side only",
                self.listen_port,
                e.details(),
            )
            await self._stub.StartBgp(request(-1))

    async def _apply(self, desired: SpeakerConfig) -> int:
        # A connection that is not READY may have been to a gobgpd that has since
        # restarted empty; checking costs no RPC, re-reading only happens then.
        if self._channel.get_state(try_to_connect=False) != grpc.ChannelConnectivity.READY:
            self._held = None
        if self._held is None:
            self._held = await self.adopt()
        held = self._held
        changes = 0
        if desired.asn == 0:
            # Nothing to speak: drop peers and paths, but keep a running daemon as it
            # is (stopping it would only make the next start slower).
            desired = SpeakerConfig(held.asn, held.router_id)
        if held.asn == 0 and desired.asn == 0:
            self._held = desired
            return 0
        if held.asn == 0:
            await self._start(desired)
            held = SpeakerConfig(desired.asn, desired.router_id)
            changes += 1
        elif (held.asn, held.router_id) != (desired.asn, desired.router_id):
            # gobgpd cannot change its identity in place: stopping drops every session,
            # so this happens only when the cluster's ASN or the node's router ID change.
            log.warning(
                "restarting BGP: ASN/router ID %s/%s → %s/%s",
                held.asn,
                held.router_id,
                desired.asn,
                desired.router_id,
            )
            await self._stub.StopBgp(api.StopBgpRequest())
            self._held = SpeakerConfig(0, IPv4Address(0))
            return 1 + await self._apply(desired)

        for address in held.peers:
            if address not in desired.peers:
                await self._stub.DeletePeer(api.DeletePeerRequest(address=str(address)))
                changes += 1
        for address, new in desired.peers.items():
            old: PeerConfig | None = held.peers.get(address)
            if old == new:
                continue
            if old is not None and old.needs_reset_to_change_to(new):
                await self._stub.DeletePeer(api.DeletePeerRequest(address=str(address)))
                old = None
                changes += 1
            if old is None:
                await self._stub.AddPeer(api.AddPeerRequest(peer=peer_message(new)))
            else:
                await self._stub.UpdatePeer(api.UpdatePeerRequest(peer=peer_message(new)))
            changes += 1

        # Before new paths go out: none may reach a neighbour it is denied to.
        policy_changed = dict(desired.denied) != dict(held.denied)
        if policy_changed:
            await self._set_policy(desired.denied)
            changes += 1
        added = sorted(desired.paths - held.paths)
        # A path re-added with new attributes replaces itself (same identifier): its
        # old version must not be withdrawn after it.
        replaced = {p.key for p in added}
        withdrawn = sorted(p for p in held.paths - desired.paths if p.key not in replaced)
        if policy_changed:
            await self._withdraw_newly_denied(held, desired)
        if added or withdrawn:
            await self._stub.AddPathStream(_path_stream(added, withdrawn, desired.asn))
            changes += len(added) + len(withdrawn)
        if policy_changed:
            # Paths already sent are judged again: the newly denied withdrawn, the
            # newly allowed sent (a soft reset: no session drops).
            for address in desired.peers:
                await self._soft_reset_out(address)
        self._held = desired
        return changes

    async def _set_policy(self, denied: Mapping[IPv4Network, frozenset[IPv4Address]]) -> None:
        request = policies_request(denied)
        await self._stub.SetPolicies(request)
        # gobgpd 3.10 stores SetPolicies' assignments but does not apply them: the
        # global export takes the policy only when assigned on its own.
        assignment = api.SetPolicyAssignmentRequest(assignment=request.assignments[0])
        await self._stub.SetPolicyAssignment(assignment)

    async def _withdraw_newly_denied(self, held: SpeakerConfig, desired: SpeakerConfig) -> None:
        """gobgpd 3.10 neither withdraws a path that a new export policy rejects nor
        does so on a soft reset out (checked against FRR here): such paths are
        withdrawn and announced again, which the policy now keeps from the newly
        denied neighbours. The neighbours still allowed see the same path leave and
        come back in one stream: narrowing a pool's peerSelector is an operator's
        change, and rare."""
        narrowed = {
            prefix
            for prefix, neighbours in desired.denied.items()
            if not neighbours <= held.denied.get(prefix, frozenset())
        }
        again = sorted(p for p in desired.paths & held.paths if p.prefix in narrowed)
        if again:
            stream = _path_stream([], again, desired.asn) + _path_stream(again, [], desired.asn)
            await self._stub.AddPathStream(stream)

    async def _soft_reset_out(self, address: IPv4Address) -> None:
        request = api.ResetPeerRequest(
            address=str(address), soft=True, direction=api.ResetPeerRequest.OUT
        )
        try:
            await self._stub.ResetPeer(request)
        except grpc.aio.AioRpcError as e:
            # Not established yet: it gets the paths, judged by the new policy, when it is.
            log.info("soft reset of %s not done: %s", address, e.details())

    async def peer_status(self) -> dict[Any, PeerStatus]:
        out = {}
        async for reply in self._stub.ListPeer(api.ListPeerRequest(enableAdvertised=True)):
            status = peer_status(reply.peer)
            out[status.address] = status
        return out

    async def watch(self) -> AsyncIterator[PeerStatus]:
        """Session state changes until the stream breaks (gobgpd stopped).

        A broken stream means the daemon may come back empty, so the next apply
        re-reads it and replays whatever is missing.
        """
        request = api.WatchEventRequest(peer=api.WatchEventRequest.Peer())
        try:
            async for event in self._stub.WatchEvent(request):
                if event.HasField("peer") and event.peer.type == event.peer.STATE:
                    yield peer_status(event.peer.peer)
        finally:
            self.forget()
