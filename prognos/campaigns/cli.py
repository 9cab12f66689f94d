"""The campaigns' commands: `prognos campaigns` (create, list)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from prognos.commands import Commands, group
from prognos.errors import ConfigError

if TYPE_CHECKING:
    from prognos.campaigns.document import Campaign
    from prognos.catalog import Catalog


def add_campaigns(commands: Commands, help_text: str) -> None:
    campaigns = group(commands, "campaigns", help_text)

    create = campaigns.add_parser(
        "create",
        help="validate a campaign document and sign it with the fleet key",
        description="Read a campaign (TOML, or JSON for a .json file), check every field and its "
        "conditions against the signal catalog, and write it signed with an ed25519 key from "
        "`prognos models keygen` (docs/campaigns.md).",
    )
    create.add_argument("file", type=Path, metavar="FILE", help="campaign document (.toml or .json)")
    create.add_argument("--out", type=Path, required=True, metavar="SIGNED", help="signed campaign to write")
    create.add_argument("--key", type=Path, required=True, metavar="PEM", help="private key from keygen")
    _add_catalog_option(create)
    create.set_defaults(run=_campaigns_create)

    listing = campaigns.add_parser(
        "list",
        help="list signed campaigns",
        description="One line per signed campaign in the files or directories given (*.json): "
        "name, version, state (expired once past its expiry), priority, trigger and expiry. With "
        "--trusted, each signature is checked and a refused campaign is listed with its reason.",
    )
    listing.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="signed campaign or directory")
    listing.add_argument(
        "--trusted",
        type=Path,
        action="append",
        default=[],
        metavar="PUB",
        help="public key that may sign campaigns (repeatable)",
    )
    _add_catalog_option(listing)
    listing.set_defaults(run=_campaigns_list)


def _add_catalog_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--catalog", type=Path, default=None, metavar="TOML", help="signal catalog (default: the shipped one)"
    )


def _catalog(args: argparse.Namespace) -> Catalog:
    from prognos.catalog import default_catalog, load_catalog

    return default_catalog() if args.catalog is None else load_catalog(args.catalog)


def _campaigns_create(args: argparse.Namespace) -> int:
    from prognos.campaigns.document import parse_campaign
    from prognos.campaigns.signed import sign_campaign
    from prognos.signing import load_private_key

    try:
        text = args.file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {args.file}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{args.file} is not UTF-8 text: {exc.reason}") from exc
    is_json = args.file.suffix.lower() == ".json"
    campaign = parse_campaign(
        text, origin=str(args.file), fmt="json" if is_json else "toml", signals=_catalog(args)
    )
    signed = sign_campaign(campaign, load_private_key(args.key))
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(signed)
    except OSError as exc:
        raise ConfigError(f"cannot write {args.out}: {exc.strerror}") from exc
    print(f"wrote {args.out}: campaign {campaign.name} version {campaign.version}, {_trigger(campaign)}")
    return 0


def _campaigns_list(args: argparse.Namespace) -> int:
    from prognos.campaigns.document import campaign_from_dict
    from prognos.campaigns.signed import CampaignRejected, verify_campaign
    from prognos.signing import key_id, load_public_key, verifier

    files: list[Path] = []
    for path in args.paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.json")))
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"{path}: no such file or directory")
    keys = [load_public_key(path) for path in args.trusted]
    trusted = {key_id(key): verifier(key) for key in keys}
    catalog = _catalog(args)
    now = datetime.now(UTC)
    if not trusted:
        print("(signatures not checked: give --trusted PUB to check them)")
    print(f"{'name':24} {'version':>7}  {'state':10} {'prio':>4}  {'expires (UTC)':16}  trigger / file")
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            if trusted:
                campaign = verify_campaign(data, trusted, signals=catalog)
            else:
                envelope = json.loads(data)
                campaign = campaign_from_dict(json.loads(envelope["campaign"]), origin=str(path))
        except CampaignRejected as exc:
            print(f"{'?':24} {'':>7}  {'rejected':10} {'':>4}  {'':16}  {path}: {exc.reason}")
            continue
        except (ValueError, TypeError, KeyError) as exc:
            print(f"{'?':24} {'':>7}  {'unreadable':10} {'':>4}  {'':16}  {path}: {exc}")
            continue
        state = "expired" if campaign.expired(now) else campaign.state
        expires = campaign.expires_at.strftime("%Y-%m-%d %H:%M")
        print(
            f"{campaign.name:24} {campaign.version:>7}  {state:10} {campaign.priority:>4}  {expires:16}  "
            f"{_trigger(campaign)} ({path})"
        )
    return 0


def _trigger(campaign: Campaign) -> str:
    from prognos.campaigns.document import PeriodTrigger

    trigger = campaign.trigger
    if isinstance(trigger, PeriodTrigger):
        return f"every {trigger.period_s:g} s"
    interval = f", at most every {trigger.min_interval_s:g} s" if trigger.min_interval_s else ""
    return f"{trigger.mode.replace('_', ' ')} on {trigger.condition.text!r}{interval}"
