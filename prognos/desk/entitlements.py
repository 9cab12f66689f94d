"""What a customer is entitled to, as read from the ledger (prognos.desk.ledger writes and
verifies it): the read model the customer view, the risk tags and the proofs share."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

Product = Literal["maintenance", "warranty", "extended_warranty"]
PRODUCTS: tuple[Product, ...] = ("maintenance", "warranty", "extended_warranty")
PRODUCT_NAMES: dict[Product, str] = {
    "maintenance": "prepaid maintenance package",
    "warranty": "warranty",
    "extended_warranty": "extended warranty",
}
Status = Literal["active", "used_up", "expired", "revoked"]


@dataclass(frozen=True, kw_only=True)
class Entitlement:
    entitlement_id: str
    customer_id: str  # the holder now (a transfer changes it)
    vin: str
    product: Product
    units: int | None  # services granted (a maintenance package); None: unlimited (warranties)
    used: int  # services consumed so far
    valid_from: datetime
    valid_until: datetime
    center_id: str  # where it is honoured now (a transfer changes it)
    granted_by: str  # the dealer that sold it
    status: Status
    last_seq: int  # the ledger entry that last changed it

    @property
    def remaining(self) -> int | None:
        return None if self.units is None else max(self.units - self.used, 0)


# The body of a ledger entry (prognos.desk.ledger stores it as canonical JSON, hashes and signs
# it). Every body has: v (format version, 1), seq, at (ISO 8601 UTC), kind, entitlement_id,
# customer_id, actor. Then by kind:
#   grant:    vin, product, units (int or null), valid_from, valid_until, center_id, dealer_id
#   consume:  units (how many services, >= 1), center_id, reference (the work order)
#   transfer: customer_id and center_id are the new holder and center; from_customer_id,
#             from_center_id, reason
#   revoke:   reason
Body = dict[str, object]
KINDS = ("grant", "consume", "transfer", "revoke")


def fold(bodies: list[Body], now: datetime) -> dict[str, Entitlement]:
    """Each entitlement's state after the entries `bodies` (in ledger order), at `now`."""
    states: dict[str, Entitlement] = {}
    for body in bodies:
        key = str(body["entitlement_id"])
        kind = body["kind"]
        seq = int(str(body["seq"]))
        if kind == "grant":
            units = body.get("units")
            states[key] = Entitlement(
                entitlement_id=key,
                customer_id=str(body["customer_id"]),
                vin=str(body["vin"]),
                product=_product(body["product"]),
                units=None if units is None else int(str(units)),
                used=0,
                valid_from=datetime.fromisoformat(str(body["valid_from"])),
                valid_until=datetime.fromisoformat(str(body["valid_until"])),
                center_id=str(body["center_id"]),
                granted_by=str(body["dealer_id"]),
                status="active",
                last_seq=seq,
            )
            continue
        state = states.get(key)
        if state is None:
            continue  # the ledger's checks refuse this; the read model ignores it
        if kind == "consume":
            state = replace(state, used=state.used + int(str(body["units"])), last_seq=seq)
        elif kind == "transfer":
            state = replace(
                state, customer_id=str(body["customer_id"]), center_id=str(body["center_id"]), last_seq=seq
            )
        elif kind == "revoke":
            state = replace(state, status="revoked", last_seq=seq)
        states[key] = state
    return {key: replace(state, status=status_at(state, now)) for key, state in states.items()}


def status_at(state: Entitlement, now: datetime) -> Status:
    if state.status == "revoked":
        return "revoked"
    if state.units is not None and state.used >= state.units:
        return "used_up"
    if now >= state.valid_until:
        return "expired"
    return "active"


def _product(value: object) -> Product:
    for product in PRODUCTS:
        if value == product:
            return product
    raise ValueError(f"unknown product {value!r}")
