"""Signed campaigns: the document in its canonical JSON form, signed with the fleet's ed25519 key
(the same keys as model bundles: `prognos models keygen`, prognos/signing.py).

    {"format": 1,
     "key_id": "<16 hex digits>",       the signing key's id (prognos.signing.key_id)
     "campaign": "<canonical JSON>",    campaign_to_dict, keys sorted, no spaces
     "signature": "<base64>"}           ed25519 over the UTF-8 bytes of "campaign"

The signature covers the exact text of "campaign", so a verifier needs no canonical form of its
own: it checks the bytes, then parses and validates them as any campaign document.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from prognos.campaigns.document import Campaign, CampaignError, campaign_from_dict, campaign_to_dict
from prognos.errors import RejectedError
from prognos.signing import Verifier, key_id, signer

FORMAT_VERSION = 1
MAX_SIGNED_BYTES = 256 * 1024
ENVELOPE_KEYS = {"format", "key_id", "campaign", "signature"}


class CampaignRejected(RejectedError):
    """A signed campaign a gateway must not run; `reason` says why, for its state report."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"campaign rejected: {reason}")
        self.reason = reason


def canonical_json(campaign: Campaign) -> str:
    return json.dumps(campaign_to_dict(campaign), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sign_campaign(campaign: Campaign, key: Ed25519PrivateKey) -> bytes:
    """The signed envelope of `campaign`, as JSON bytes."""
    body = canonical_json(campaign)
    signature = signer(key)(body.encode("utf-8"))
    envelope = {
        "format": FORMAT_VERSION,
        "key_id": key_id(key.public_key()),
        "campaign": body,
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    return (json.dumps(envelope, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def verify_campaign(
    data: bytes,
    trusted: Mapping[str, Verifier],
    *,
    signals: Collection[str] | None = None,
) -> Campaign:
    """The campaign in a signed envelope that a `trusted` key (by key id) signed, validated again
    (against `signals`, the catalog's paths, when given); CampaignRejected otherwise."""
    if len(data) > MAX_SIGNED_BYTES:
        raise CampaignRejected(f"signed campaign of {len(data)} bytes exceeds {MAX_SIGNED_BYTES}")
    try:
        envelope = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CampaignRejected("not a signed campaign (not JSON)") from exc
    if not isinstance(envelope, dict) or set(envelope) != ENVELOPE_KEYS:
        raise CampaignRejected(f"not a signed campaign (it needs exactly {', '.join(sorted(ENVELOPE_KEYS))})")
    if envelope["format"] != FORMAT_VERSION or isinstance(envelope["format"], bool):
        raise CampaignRejected(f"unknown signed-campaign format {str(envelope['format'])[:20]!r}")
    body, signer_id, signature_text = envelope["campaign"], envelope["key_id"], envelope["signature"]
    if not (isinstance(body, str) and isinstance(signer_id, str) and isinstance(signature_text, str)):
        raise CampaignRejected("campaign, key_id and signature must be text")
    verify = trusted.get(signer_id)
    if verify is None:
        raise CampaignRejected(f"signed by key {signer_id[:20]!r}, which is not trusted")
    try:
        signature = base64.b64decode(signature_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CampaignRejected("signature is not base64") from exc
    if not verify(signature, body.encode("utf-8", "surrogatepass")):
        raise CampaignRejected(
            "bad signature: the campaign was changed after it was signed, or another key signed it"
        )
    try:
        return campaign_from_dict(json.loads(body), origin="signed campaign", signals=signals)
    except CampaignError as exc:
        raise CampaignRejected(str(exc)) from exc
    except (ValueError, RecursionError) as exc:
        raise CampaignRejected("signed campaign body is not JSON") from exc
