"""How a gateway agent is put together: the one place that knows which part takes which setting.

`build_gateway(config)` turns a gateway.toml into a running-ready `Gateway`: the catalog,
the sources (through the SOURCES registry), the spool and the record seqs this start claims
from it, the model store (seeded with the shipped bundle) and the bundle it runs, the assessor,
the uplink and the forwarder (with storage receipts when the config asks for them). Every
agent that runs with a spool and sources is built here: `prognos edge run`, the HIL bench and
the demo, and the tests.

Two users deliberately take fewer parts, through the same functions rather than their own
wiring: `prognos edge simulate` (prognos/hil/fleet.py) runs bare assessors that publish
directly, without interfaces or spool (`make_assessor`, `open_uplink`); the chaos rig
(tests/support/chaos_rig.py) runs the store-and-forward path alone, with shorter timeouts
(`open_link`, `LinkTiming`).

A module of its own rather than part of gateway.py: gateway.py is the agent's loop and knows
its parts only by their interfaces, so it runs on fakes in a test; this module imports every
concrete part (paho through the uplink, SQLite through the spool, the LiteRT models), and the
simulated fleet and the chaos rig use its functions without the loop.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from prognos.backoff import Backoff
from prognos.catalog import default_catalog, load_catalog
from prognos.config import BrokerConfig, GatewayConfig
from prognos.edge import SHIPPED_BUNDLE
from prognos.edge.agent import VehicleAssessor
from prognos.edge.detector import Bundle, load_bundle
from prognos.edge.forwarder import ACK_TIMEOUT_S, Forwarder
from prognos.edge.gateway import Gateway, ModelUpdates
from prognos.edge.ota import ModelStore
from prognos.edge.sources import open_source
from prognos.edge.spool import Spool
from prognos.edge.uplink import CONNECT_TIMEOUT_S, MqttUplink
from prognos.security import BrokerAuth
from prognos.signing import load_public_key

log = logging.getLogger(__name__)

# Record seqs each start claims from the spool: never used up in one run, and 2**31 starts
# before the 2**63 of the wire format are.
SEQS_PER_RUN = 1 << 32


@dataclass(frozen=True)
class LinkTiming:
    """How soon the link gives up on the broker and tries again. The defaults are the service's;
    the chaos rig shortens them so that its faults heal in seconds. A backoff of None is the
    part's own (prognos/backoff.py)."""

    connect_timeout_s: float = CONNECT_TIMEOUT_S
    ack_timeout_s: float = ACK_TIMEOUT_S
    reconnect_backoff: Backoff | None = None
    retry_backoff: Backoff | None = None


SERVICE_TIMING = LinkTiming()


def build_gateway(config: GatewayConfig, *, clock: Callable[[], float] = time.time) -> Gateway:
    """The agent `config` describes; nothing is left open if a part cannot be made (a
    ConfigError names it). `clock` dates live samples and moves live windows on: the wall clock
    in service, the bench's simulated clock on the HIL bench."""
    catalog = load_catalog(config.catalog) if config.catalog else default_catalog()
    trusted = [load_public_key(path) for path in config.trusted_keys]
    models = ModelUpdates(store=ModelStore(config.models), trusted=trusted) if config.models else None
    with contextlib.ExitStack() as opened:
        sources = [
            opened.enter_context(open_source(source, catalog=catalog, clock=clock))
            for source in config.sources
        ]
        spool = opened.enter_context(Spool(config.spool.path, max_bytes=config.spool.max_bytes))
        first_seq = spool.claim_seqs(SEQS_PER_RUN)
        bundle = running_bundle(models.store) if models is not None else None
        assessor = make_assessor(
            vin=config.vin, heartbeat_s=config.heartbeat_s, bundle=bundle, first_seq=first_seq
        )
        if bundle is not None:
            log.info("running model bundle %s %s", bundle.bundle_id, bundle.version)
        uplink, forwarder = open_link(
            config.broker,
            fleet=config.fleet,
            vin=config.vin,
            spool=spool,
            on_model_update=models.inbox.put if models is not None else None,
        )
        opened.callback(uplink.close)
        opened.callback(forwarder.close)
        agent = Gateway(
            sources=sources,
            assessor=assessor,
            spool=spool,
            forwarder=forwarder,
            link=uplink,
            catalog=catalog,
            window_s=config.window_s,
            status_interval_s=config.status_interval_s,
            models=models,
            clock=clock,
        )
        opened.pop_all()  # the agent owns them now
    return agent


def running_bundle(store: ModelStore) -> Bundle:
    """The bundle the store says is current; a new store is seeded with the shipped one first."""
    return load_bundle(store.current() or store.seed(SHIPPED_BUNDLE))


def make_assessor(
    *, vin: str, heartbeat_s: float, bundle: Bundle | None = None, first_seq: int = 1
) -> VehicleAssessor:
    """A vehicle's assessor, running `bundle`'s detectors (None: the rules alone), numbering its
    records from `first_seq`."""
    assessor = VehicleAssessor(vin=vin, heartbeat_s=heartbeat_s, first_seq=first_seq)
    if bundle is not None:
        assessor.use_bundle(bundle)
    return assessor


def open_uplink(
    broker: BrokerConfig,
    *,
    fleet: str,
    vin: str,
    auth: BrokerAuth | None = None,
    on_model_update: Callable[[bytes], None] | None = None,
    timing: LinkTiming = SERVICE_TIMING,
) -> MqttUplink:
    """The vehicle's MQTT connection to `broker`: its TLS and login (`auth`, or the files the
    broker table names, read now), subscribed to its storage receipts when the table sets
    receipt_timeout_s, and to its model topic when `on_model_update` is given."""
    return MqttUplink(
        host=broker.host,
        port=broker.port,
        fleet=fleet,
        vin=vin,
        keepalive_s=broker.keepalive_s,
        connect_timeout_s=timing.connect_timeout_s,
        reconnect_backoff=timing.reconnect_backoff,
        on_model_update=on_model_update,
        auth=auth if auth is not None else broker.auth(),
        receipts=broker.receipt_timeout_s is not None,
    )


def open_link(
    broker: BrokerConfig,
    *,
    fleet: str,
    vin: str,
    spool: Spool,
    on_model_update: Callable[[bytes], None] | None = None,
    timing: LinkTiming = SERVICE_TIMING,
) -> tuple[MqttUplink, Forwarder]:
    """The store-and-forward path: the uplink (open_uplink) and the forwarder that drains `spool`
    into it, keeping each record until its storage receipt when the broker table sets
    receipt_timeout_s (the uplink then listens for the receipts)."""
    uplink = open_uplink(broker, fleet=fleet, vin=vin, on_model_update=on_model_update, timing=timing)
    try:
        forwarder = Forwarder(
            spool=spool,
            link=uplink,
            ack_timeout_s=timing.ack_timeout_s,
            retry_backoff=timing.retry_backoff,
            receipt_timeout_s=broker.receipt_timeout_s,
        )
    except BaseException:
        uplink.close()
        raise
    return uplink, forwarder
