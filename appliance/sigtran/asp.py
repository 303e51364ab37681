# -*- test-case-name: tests.sigtran.test_asp -*-
"""
One M3UA association's state machine (RFC 4666 4.3): ASP state
maintenance, traffic maintenance, routing key registration, heartbeat and
the SSNM messages, on an injected clock.  Pure of sockets: the transport
hands it whole messages and gives it C{send} and C{close}; the M3UA layer
(L{appliance.sigtran.mtp}) is its C{owner} and hears about activity,
DATA and destination state.

Two ends: the I{initiator} (our role C{asp} or C{ipsp}: we connected, we
send ASPUP, REG REQ when no routing context is configured, then ASPAC)
and the I{responder} (role C{sg}: the peer connected; we acknowledge, give
routing contexts for its routing keys, and tell AS state with NTFY).
Anything malformed or unexpected is answered with ERR and counted; the
association keeps serving.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from twisted.logger import Logger

from appliance.sigtran import m3ua
from appliance.sigtran.interfaces import ProtocolData

DOWN, UP_SENT, INACTIVE, REG_SENT, ACTIVE_SENT, ACTIVE = (
    "ASP-DOWN", "ASPUP-SENT", "ASP-INACTIVE", "REG-SENT", "ASPAC-SENT",
    "ASP-ACTIVE")


@dataclass(frozen=True)
class PeerSettings:
    """
    The immutable settings of one association.

    @ivar name: the C{m3ua-peer} name.
    @ivar address: its IP address.
    @ivar port: its port (initiator: where we connect).
    @ivar transport: C{tcp} or C{sctp}.
    @ivar role: our role: C{asp}, C{ipsp} (initiator) or C{sg}.
    @ivar routing_context: configured RC, or None (register a key).
    @ivar traffic_mode: C{override} or C{loadshare}.
    """
    name: str
    address: str | None = None
    port: int = 2905
    transport: str = "tcp"
    role: str = "asp"
    routing_context: int | None = None
    traffic_mode: str = "override"

    @property
    def initiator(self) -> bool:
        """Whether we connect and send ASPUP (roles asp and ipsp)."""
        return self.role != "sg"

    @classmethod
    def of(cls, peer: Any) -> "PeerSettings":
        """@return: the settings of a persistent L{M3UAPeer}."""
        return cls(peer.name, peer.address, peer.port, peer.transport,
                   peer.role, peer.routing_context, peer.traffic_mode)


@dataclass(frozen=True)
class Timers:
    """
    @ivar ack: seconds to wait for an ASPUP/ASPAC/REG acknowledgement
        before sending it again (T(ack), RFC 4666 4.3.4.1).
    @ivar ack_tries: sends before giving up (the connection is closed).
    @ivar beat: seconds between our BEATs (0: none).
    @ivar beat_misses: unanswered BEATs before the peer is taken as dead.
    """
    ack: float = 2.0
    ack_tries: int = 5
    beat: float = 10.0
    beat_misses: int = 3


class Association:
    """
    One M3UA association, from connection to connection loss.

    @ivar state: the ASP state (C{ASP-DOWN} ... C{ASP-ACTIVE}).
    @ivar rc: the routing context in use (configured or registered).
    @ivar as_state: the last AS state a NTFY told (C{AS-ACTIVE}...).
    @ivar unavailable: point codes the peer said are unavailable (DUNA).
    @ivar served: point codes the peer registered (responder side).
    @ivar counters: messages by direction and name (C{"rx DATA"}).
    """

    log = Logger()

    def __init__(self, settings: PeerSettings, owner: Any, clock: Any,
                 point_code: int, timers: Timers = Timers()):
        """
        @param settings: the peer's settings.
        @param owner: the M3UA layer: C{association_active(a)},
            C{association_down(a)}, C{data_received(a, pd)},
            C{destinations(a, pcs, available)}, C{congestion(a, pcs)},
            C{user_unavailable(a, pc, user, cause)}.
        @param clock: an L{IReactorTime}.
        @param point_code: our point code (for routing keys).
        @param timers: the timers.
        """
        self.settings = settings
        self.owner = owner
        self.clock = clock
        self.point_code = point_code
        self.timers = timers
        self.state = DOWN
        self.rc: int | None = settings.routing_context
        self.as_state = "-"
        self.unavailable: set[int] = set()
        self.served: set[int] = set()
        self.counters: Counter = Counter()
        self.connected_since: float | None = None
        self._send: Callable[[bytes], None] | None = None
        self._close: Callable[[], None] | None = None
        self._retry = None
        self._tries = 0
        self._beater = None
        self._beat_seq = 0
        self._beats_unanswered = 0

    @property
    def name(self) -> str:
        """The peer's name."""
        return self.settings.name

    @property
    def active(self) -> bool:
        """Whether DATA may be sent now."""
        return self.state == ACTIVE

    # transport side

    def connection_made(self, send: Callable[[bytes], None],
                        close: Callable[[], None]) -> None:
        """The transport is up: start the ASP state procedures."""
        self._send, self._close = send, close
        self.connected_since = self.clock.seconds()
        self.unavailable.clear()
        self.served.clear()
        # A registered routing context lives only as long as the
        # association: a restarted SG must be asked again.
        self.rc = self.settings.routing_context
        self._beats_unanswered = 0
        self.state = DOWN
        self.log.info("M3UA {peer}: connected", peer=self.name)
        if self.settings.initiator:
            self._request(UP_SENT, m3ua.aspsm(m3ua.ASPUP))
        self._start_beat()

    def connection_lost(self) -> None:
        """The transport is gone: everything it carried is down."""
        self.state = DOWN
        self._send = self._close = None
        self.connected_since = None
        self._cancel_retry()
        if self._beater is not None and self._beater.active():
            self._beater.cancel()
        self._beater = None
        self.log.info("M3UA {peer}: connection lost", peer=self.name)
        self.owner.association_down(self)

    def frame_error(self, error: m3ua.M3UAError) -> None:
        """The stream cannot be framed any more: ERR, then close."""
        self.counters["rx malformed"] += 1
        self._write(m3ua.err(error.code, error.diagnostic))
        self.close()

    def close(self) -> None:
        """Close the transport (a reconnect follows for initiators)."""
        if self._close is not None:
            self._close()

    def stop(self) -> None:
        """Close for good (the peer was removed, the node stops): no
        timer of this association survives."""
        self._cancel_retry()
        if self._beater is not None and self._beater.active():
            self._beater.cancel()
        self._beater = None
        self.close()

    def message_received(self, raw: bytes) -> None:
        """One whole M3UA message arrived."""
        try:
            msg = m3ua.decode(raw)
            self.counters["rx " + msg.name] += 1
            handler = self._handlers.get(msg.kind)
            if handler is None:
                raise m3ua.M3UAError(m3ua.E_UNEXPECTED_MESSAGE,
                                     f"{msg.name} not expected", raw[:8])
            handler(self, msg, raw)
        except m3ua.M3UAError as e:
            self.counters["rx malformed"] += 1
            self.log.warn("M3UA {peer}: {why}; answering ERR {code:#x}",
                          peer=self.name, why=str(e), code=e.code)
            if not (raw[2:4] == b"\x00\x00"):   # never answer an ERR
                self._write(m3ua.err(e.code, e.diagnostic or raw[:40]))

    # sending

    def _write(self, raw: bytes) -> None:
        if self._send is None:
            return
        self.counters["tx " + m3ua.NAMES.get((raw[2], raw[3]), "?")] += 1
        self._send(raw)

    def send_data(self, pd: ProtocolData) -> None:
        """Send a DATA (the owner checked that we are active)."""
        self.counters["tx DATA"] += 1
        self._send(m3ua.data(pd, rc=self.rc))

    def _request(self, state: str, raw: bytes) -> None:
        """Send a request that wants an acknowledgement, with T(ack)."""
        self._cancel_retry()
        self.state = state
        self._tries = 1
        self._write(raw)
        self._retry = self.clock.callLater(self.timers.ack, self._again, raw)

    def _again(self, raw: bytes) -> None:
        self._retry = None
        if self._tries >= self.timers.ack_tries:
            self.log.warn("M3UA {peer}: no answer in {state}; closing",
                          peer=self.name, state=self.state)
            self.close()
            return
        self._tries += 1
        self._write(raw)
        self._retry = self.clock.callLater(self.timers.ack, self._again, raw)

    def _cancel_retry(self) -> None:
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None

    def _traffic_mode(self) -> int:
        return (m3ua.TM_LOADSHARE if self.settings.traffic_mode == "loadshare"
                else m3ua.TM_OVERRIDE)

    def _activate(self) -> None:
        rcs = () if self.rc is None else (self.rc,)
        self._request(ACTIVE_SENT, m3ua.asptm(
            m3ua.ASPAC, rcs=rcs, traffic_mode=self._traffic_mode()))

    # heartbeat

    def _start_beat(self) -> None:
        if self.timers.beat > 0:
            self._beater = self.clock.callLater(self.timers.beat, self._beat)

    def _beat(self) -> None:
        self._beater = None
        if self._beats_unanswered >= self.timers.beat_misses:
            self.log.warn("M3UA {peer}: {n} BEATs unanswered; closing",
                          peer=self.name, n=self._beats_unanswered)
            self._beats_unanswered = 0
            self.close()
            return
        self._beat_seq += 1
        self._beats_unanswered += 1
        self._write(m3ua.beat(m3ua.BEAT, self._beat_seq.to_bytes(4, "big")))
        self._start_beat()

    # receiving: both ends

    def _on_beat(self, msg: m3ua.Message, raw: bytes) -> None:
        self._write(m3ua.beat(m3ua.BEAT_ACK, msg.get(m3ua.TAG_HEARTBEAT_DATA)))

    def _on_beat_ack(self, msg: m3ua.Message, raw: bytes) -> None:
        self._beats_unanswered = 0

    def _on_err(self, msg: m3ua.Message, raw: bytes) -> None:
        self.log.warn("M3UA {peer}: ERR {code} from the peer",
                      peer=self.name, code=msg.u32(m3ua.TAG_ERROR_CODE))

    def _on_data(self, msg: m3ua.Message, raw: bytes) -> None:
        if self.state != ACTIVE:
            raise m3ua.M3UAError(m3ua.E_UNEXPECTED_MESSAGE,
                                 f"DATA in {self.state}", raw[:40])
        rcs = msg.routing_contexts()
        if rcs and self.rc is not None and rcs[0] != self.rc:
            raise m3ua.M3UAError(m3ua.E_INVALID_ROUTING_CONTEXT,
                                 f"DATA for RC {rcs[0]}", raw[8:24])
        self.owner.data_received(self, msg.protocol_data())

    def _on_ntfy(self, msg: m3ua.Message, raw: bytes) -> None:
        kind, info = msg.status()
        if kind == m3ua.STATUS_AS_STATE_CHANGE:
            self.as_state = {m3ua.AS_INACTIVE: "AS-INACTIVE",
                             m3ua.AS_ACTIVE: "AS-ACTIVE",
                             m3ua.AS_PENDING: "AS-PENDING"}.get(info, "?")
        elif info == m3ua.OTHER_ALTERNATE_ASP and self.state == ACTIVE:
            # Override: another ASP took over our AS (4.3.4.3).
            self.state = INACTIVE
            self.owner.association_down(self)

    def _on_ssnm(self, msg: m3ua.Message, raw: bytes) -> None:
        pcs = [pc for _, pc in msg.affected_pcs()]
        if not pcs:
            raise m3ua.M3UAError(m3ua.E_MISSING_PARAMETER,
                                 "no Affected Point Code", raw[:40])
        if msg.kind == m3ua.DUNA:
            self.unavailable.update(pcs)
            self.owner.destinations(self, pcs, False)
        elif msg.kind in (m3ua.DAVA, m3ua.DRST):
            self.unavailable.difference_update(pcs)
            self.owner.destinations(self, pcs, True)
        elif msg.kind == m3ua.SCON:
            self.owner.congestion(self, pcs)
        elif msg.kind == m3ua.DUPU:
            cause, user = msg.user_cause()
            self.owner.user_unavailable(self, pcs[0], user, cause)

    # receiving: initiator

    def _on_aspup_ack(self, msg: m3ua.Message, raw: bytes) -> None:
        if self.state != UP_SENT:
            return      # a late duplicate: harmless
        self._cancel_retry()
        self.state = INACTIVE
        if self.rc is None:
            self._request(REG_SENT, m3ua.reg_req([m3ua.RoutingKey(
                1, (self.point_code,), traffic_mode=self._traffic_mode())]))
        else:
            self._activate()

    def _on_reg_rsp(self, msg: m3ua.Message, raw: bytes) -> None:
        if self.state != REG_SENT:
            raise m3ua.M3UAError(m3ua.E_UNEXPECTED_MESSAGE,
                                 f"REG RSP in {self.state}", raw[:40])
        for result in msg.nested(m3ua.TAG_REG_RESULT):
            status = m3ua.sub_u32(result, m3ua.TAG_REG_STATUS)
            if status == 0:
                self.rc = m3ua.sub_u32(result, m3ua.TAG_ROUTING_CONTEXT)
            else:
                self.log.warn("M3UA {peer}: routing key refused ({status})",
                              peer=self.name, status=status)
        self._activate()

    def _on_aspac_ack(self, msg: m3ua.Message, raw: bytes) -> None:
        if self.state != ACTIVE_SENT:
            return
        self._cancel_retry()
        self.state = ACTIVE
        self.log.info("M3UA {peer}: ASP-ACTIVE (RC {rc})", peer=self.name,
                      rc=self.rc)
        self.owner.association_active(self)

    def _on_aspia_ack(self, msg: m3ua.Message, raw: bytes) -> None:
        self._cancel_retry()
        self.state = INACTIVE

    def _on_aspdn_ack(self, msg: m3ua.Message, raw: bytes) -> None:
        self._cancel_retry()
        self.state = DOWN

    # receiving: responder

    def _responder(self, raw: bytes) -> None:
        if self.settings.initiator and self.settings.role != "ipsp":
            raise m3ua.M3UAError(m3ua.E_UNEXPECTED_MESSAGE,
                                 "ASP messages to an ASP", raw[:8])

    def _on_aspup(self, msg: m3ua.Message, raw: bytes) -> None:
        self._responder(raw)
        was_active = self.state == ACTIVE
        self.state = INACTIVE
        self._write(m3ua.aspsm(m3ua.ASPUP_ACK))
        if was_active:
            self.owner.association_down(self)

    def _on_reg_req(self, msg: m3ua.Message, raw: bytes) -> None:
        self._responder(raw)
        results = []
        for key in msg.nested(m3ua.TAG_ROUTING_KEY):
            local = m3ua.sub_u32(key, m3ua.TAG_LOCAL_RK_ID) or 0
            dpc = m3ua.sub_u32(key, m3ua.TAG_DPC)
            if dpc is None:
                results.append((local, 2, 0))   # invalid DPC
                continue
            if self.rc is None:
                self.rc = m3ua.sub_u32(key, m3ua.TAG_ROUTING_CONTEXT) or 1
            self.served.add(dpc & 0xFFFFFF)
            results.append((local, 0, self.rc))
        if not results:
            raise m3ua.M3UAError(m3ua.E_MISSING_PARAMETER,
                                 "REG REQ without a Routing Key", raw[:40])
        self._write(m3ua.reg_rsp(results))

    def _on_aspac(self, msg: m3ua.Message, raw: bytes) -> None:
        self._responder(raw)
        if self.state == DOWN:
            raise m3ua.M3UAError(m3ua.E_UNEXPECTED_MESSAGE,
                                 "ASPAC before ASPUP", raw[:8])
        tm = msg.u32(m3ua.TAG_TRAFFIC_MODE)
        if tm is not None and tm not in (m3ua.TM_OVERRIDE, m3ua.TM_LOADSHARE):
            raise m3ua.M3UAError(m3ua.E_UNSUPPORTED_TRAFFIC_MODE,
                                 f"traffic mode {tm}", raw[:40])
        rcs = msg.routing_contexts()
        if rcs and self.rc is not None and self.rc not in rcs:
            raise m3ua.M3UAError(m3ua.E_INVALID_ROUTING_CONTEXT,
                                 f"RC {rcs}", raw[:40])
        if rcs and self.rc is None:
            self.rc = rcs[0]
        self.state = ACTIVE
        out = () if self.rc is None else (self.rc,)
        self._write(m3ua.asptm(m3ua.ASPAC_ACK, rcs=out, traffic_mode=tm))
        self._write(m3ua.ntfy(m3ua.STATUS_AS_STATE_CHANGE, m3ua.AS_ACTIVE,
                              rcs=out))
        self.as_state = "AS-ACTIVE"
        self.owner.association_active(self)

    def _on_aspia(self, msg: m3ua.Message, raw: bytes) -> None:
        self._responder(raw)
        self._write(m3ua.asptm(m3ua.ASPIA_ACK, rcs=msg.routing_contexts()))
        if self.state == ACTIVE:
            self.state = INACTIVE
            self.as_state = "AS-PENDING"
            self.owner.association_down(self)

    def _on_aspdn(self, msg: m3ua.Message, raw: bytes) -> None:
        self._responder(raw)
        was_active = self.state == ACTIVE
        self.state = DOWN
        self._write(m3ua.aspsm(m3ua.ASPDN_ACK))
        if was_active:
            self.owner.association_down(self)

    def _on_daud(self, msg: m3ua.Message, raw: bytes) -> None:
        self._responder(raw)
        for _, pc in msg.affected_pcs():
            available = self.owner.available(pc)
            self._write(m3ua.ssnm(m3ua.DAVA if available else m3ua.DUNA,
                                  [pc], rcs=msg.routing_contexts()))

    def _on_dereg_req(self, msg: m3ua.Message, raw: bytes) -> None:
        self._responder(raw)
        self._write(m3ua.dereg_rsp([(rc, 0) for rc in msg.routing_contexts()]))

    _handlers = {
        m3ua.BEAT: _on_beat, m3ua.BEAT_ACK: _on_beat_ack, m3ua.ERR: _on_err,
        m3ua.DATA: _on_data, m3ua.NTFY: _on_ntfy, m3ua.DUNA: _on_ssnm,
        m3ua.DAVA: _on_ssnm, m3ua.SCON: _on_ssnm, m3ua.DUPU: _on_ssnm,
        m3ua.DRST: _on_ssnm, m3ua.ASPUP_ACK: _on_aspup_ack,
        m3ua.REG_RSP: _on_reg_rsp, m3ua.ASPAC_ACK: _on_aspac_ack,
        m3ua.ASPIA_ACK: _on_aspia_ack, m3ua.ASPDN_ACK: _on_aspdn_ack,
        m3ua.ASPUP: _on_aspup, m3ua.REG_REQ: _on_reg_req,
        m3ua.ASPAC: _on_aspac, m3ua.ASPIA: _on_aspia, m3ua.ASPDN: _on_aspdn,
        m3ua.DAUD: _on_daud, m3ua.DEREG_REQ: _on_dereg_req,
    }
