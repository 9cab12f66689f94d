"""What a customer is entitled to, as read from the ledger (prognos.desk.ledger writes and
verifies it): the read model the customer view, the risk tags and the proofs share."""

from __future__ import annotations

from dataclasses import dataclass
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
