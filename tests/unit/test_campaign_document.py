"""Campaign documents: valid ones in TOML and JSON, invalid ones refused naming their field;
signed campaigns verified, refused when tampered; the `prognos campaigns` commands."""

from __future__ import annotations

import base64
import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from prognos.campaigns.document import (
    Campaign,
    CampaignError,
    ConditionTrigger,
    PeriodTrigger,
    campaign_from_dict,
    campaign_to_dict,
    parse_campaign,
)
from prognos.campaigns.signed import CampaignRejected, sign_campaign, verify_campaign
from prognos.catalog import default_catalog
from prognos.cli import main
from prognos.errors import ConfigError
from prognos.signing import generate_key, key_id, load_private_key, load_public_key, verifier

CATALOG = default_catalog()
PAD = "Vehicle.Chassis.Axle.Row1.Wheel.Left.Brake.PadWear"

DOCUMENT = f"""
name = "brake-heat"
version = 3
priority = 2
compression = "zlib"
state = "active"
expires_at = 2027-06-30T00:00:00Z
post_trigger_s = 10.0

[trigger]
condition = "max({PAD}, 60) > 80 and Vehicle.Speed > 30"
mode = "rising_edge"
min_interval_s = 300

[[signals]]
path = "Vehicle.Speed"
max_samples = 600
min_interval_ms = 1000

[[signals]]
path = "{PAD}"

[spool]
partition = "brakes"
max_bytes = 1_000_000
min_ttl_s = 86_400
upload_condition = "Vehicle.Speed < 1"

[target]
model = ["eBus-12", "eBus-18"]
region = "eu"
"""


def document() -> dict[str, Any]:
    return tomllib.loads(DOCUMENT)


def test_a_full_document_parses_to_its_fields() -> None:
    campaign = parse_campaign(DOCUMENT, signals=CATALOG)
    assert campaign.name == "brake-heat" and campaign.version == 3 and campaign.priority == 2
    assert campaign.compression == "zlib" and campaign.state == "active"
    assert campaign.expires_at == datetime(2027, 6, 30, tzinfo=UTC)
    assert campaign.post_trigger_s == 10.0
    assert isinstance(campaign.trigger, ConditionTrigger)
    assert campaign.trigger.mode == "rising_edge" and campaign.trigger.min_interval_s == 300.0
    assert campaign.trigger.condition.signals == {PAD, "Vehicle.Speed"}
    assert [(s.path, s.max_samples, s.min_interval_ms) for s in campaign.signals] == [
        ("Vehicle.Speed", 600, 1000),
        (PAD, 100_000, 0),
    ]
    assert campaign.spool.partition == "brakes" and campaign.spool.max_bytes == 1_000_000
    assert campaign.spool.min_ttl_s == 86_400
    assert campaign.spool.upload_condition is not None
    assert campaign.target == {"model": ("eBus-12", "eBus-18"), "region": ("eu",)}
    assert campaign.targets({"model": "eBus-18", "region": "eu", "vin": "X"})
    assert not campaign.targets({"model": "eBus-18"})
    assert campaign.expired(datetime(2027, 6, 30, tzinfo=UTC))
    assert not campaign.expired(datetime(2027, 6, 29, tzinfo=UTC))


def test_the_smallest_document_takes_the_defaults() -> None:
    campaign = parse_campaign(
        'name = "p"\nversion = 1\nexpires_at = "2030-01-01T00:00:00+02:00"\n'
        '[trigger]\nperiod_s = 60\n[[signals]]\npath = "Vehicle.Speed"\n',
        signals=CATALOG,
    )
    assert campaign.trigger == PeriodTrigger(period_s=60.0)
    assert campaign.expires_at == datetime(2029, 12, 31, 22, tzinfo=UTC)
    assert (campaign.priority, campaign.compression, campaign.state) == (5, "off", "active")
    assert campaign.spool.partition == "p" and campaign.spool.upload_condition is None
    assert campaign.target == {} and campaign.targets({})


def test_json_and_the_written_out_form_give_the_same_campaign() -> None:
    campaign = parse_campaign(DOCUMENT, signals=CATALOG)
    written = campaign_to_dict(campaign)
    assert campaign_from_dict(written, signals=CATALOG) == campaign
    assert parse_campaign(json.dumps(written), fmt="json", signals=CATALOG) == campaign


def change(path: str, value: Any) -> dict[str, Any]:
    """The document with the field at `path` ("a.b", "signals.0.path") set, or removed when
    value is DELETE."""
    doc = document()
    *parents, last = path.split(".")
    table: Any = doc
    for key in parents:
        table = table[int(key)] if key.isdigit() else table[key]
    if value is DELETE:
        del table[int(last) if last.isdigit() else last]
    else:
        table[int(last) if last.isdigit() else last] = value
    return doc


DELETE = object()


@pytest.mark.parametrize(
    "path, value, field, words",
    [
        ("name", DELETE, "name", "missing"),
        ("name", "Brake Heat", "name", "must match"),
        ("name", 7, "name", "must be text"),
        ("version", 0, "version", "from 1"),
        ("version", "1", "version", "whole number"),
        ("version", True, "version", "whole number"),
        ("priority", 10, "priority", "from 0 to 9"),
        ("compression", "snappy", "compression", "one of off, zlib"),
        ("state", "paused", "state", "one of active, suspended"),
        ("expires_at", DELETE, "expires_at", "missing"),
        ("expires_at", "tomorrow", "expires_at", "not an ISO 8601 time"),
        ("expires_at", "2027-01-01T00:00:00", "expires_at", "time zone"),
        ("expires_at", 5, "expires_at", "must be a time"),
        ("post_trigger_s", -1, "post_trigger_s", "from 0 to 3600"),
        ("post_trigger_s", float("nan"), "post_trigger_s", "from 0 to 3600"),
        ("colour", "red", "colour", "unknown field"),
        ("trigger", DELETE, "trigger", "missing"),
        ("trigger", "always", "trigger", "must be a table"),
        ("trigger.condition", DELETE, "trigger", "exactly one of condition and period_s"),
        ("trigger.period_s", 10, "trigger", "exactly one of condition and period_s"),
        ("trigger.condition", "Vehicle.Speed >", "trigger.condition", "column 16: expected a value"),
        ("trigger.condition", "Vehicle.Nope > 1", "trigger.condition", "unknown signal"),
        ("trigger.condition", "Vehicle.Speed", "trigger.condition", "must be true or false"),
        ("trigger.mode", "falling_edge", "trigger.mode", "one of always, rising_edge"),
        ("trigger.min_interval_s", -5, "trigger.min_interval_s", "from 0"),
        ("trigger.extra", 1, "trigger.extra", "unknown field"),
        ("signals", DELETE, "signals", "at least one signal"),
        ("signals", [], "signals", "at least one signal"),
        ("signals.0", "Vehicle.Speed", "signals[0]", "must be a table"),
        ("signals.1.path", "Vehicle.Speed", "signals[1].path", "listed twice"),
        ("signals.1.path", "Vehicle.Nope", "signals[1].path", "unknown signal"),
        ("signals.0.path", DELETE, "signals[0].path", "missing"),
        ("signals.0.max_samples", 0, "signals[0].max_samples", "from 1"),
        ("signals.0.min_interval_ms", 1.5, "signals[0].min_interval_ms", "whole number"),
        ("signals.0.rate", 1, "signals[0].rate", "unknown field"),
        ("spool.partition", "Brakes!", "spool.partition", "must match"),
        ("spool.max_bytes", 10, "spool.max_bytes", "from 1024"),
        ("spool.min_ttl_s", -1, "spool.min_ttl_s", "from 0"),
        ("spool.upload_condition", "1 +", "spool.upload_condition", "column 4"),
        ("target.model", [], "target.model", "non-empty list"),
        ("target.model", [1], "target.model", "non-empty list"),
        ("target.Model", "x", "target.Model", "must match"),
    ],
)
def test_invalid_documents_are_refused_naming_the_field(
    path: str, value: Any, field: str, words: str
) -> None:
    doc = change(path, value)
    with pytest.raises(CampaignError) as caught:
        campaign_from_dict(doc, origin="c.toml", signals=CATALOG)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"c.toml: {field}: ")
    assert words in str(caught.value)


def test_a_period_trigger_takes_no_condition_options() -> None:
    doc = document()
    doc["trigger"] = {"period_s": 60, "mode": "always"}
    with pytest.raises(CampaignError, match=r"trigger\.mode: applies to a condition"):
        campaign_from_dict(doc)
    doc["trigger"] = {"period_s": 0}
    with pytest.raises(CampaignError, match=r"trigger\.period_s: must be above 0"):
        campaign_from_dict(doc)


@pytest.mark.parametrize("text, fmt", [("name = ", "toml"), ("{", "json"), ("[1]", "json")])
def test_text_that_is_no_document_is_a_config_error(text: str, fmt: Any) -> None:
    with pytest.raises(ConfigError, match=r"^x: "):
        parse_campaign(text, origin="x", fmt=fmt)


# --- signed campaigns -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("keys")
    private, public = generate_key()
    (directory / "fleet.pem").write_bytes(private)
    (directory / "fleet.pub").write_bytes(public)
    return directory / "fleet.pem", directory / "fleet.pub"


def trusted(public: Path) -> dict[str, Any]:
    key = load_public_key(public)
    return {key_id(key): verifier(key)}


def signed_campaign(keys: tuple[Path, Path]) -> tuple[Campaign, bytes]:
    campaign = parse_campaign(DOCUMENT, signals=CATALOG)
    return campaign, sign_campaign(campaign, load_private_key(keys[0]))


def test_a_signed_campaign_verifies_to_itself(keys: tuple[Path, Path]) -> None:
    campaign, signed = signed_campaign(keys)
    assert verify_campaign(signed, trusted(keys[1]), signals=CATALOG) == campaign


def retouched(signed: bytes, edit: Any) -> bytes:
    envelope = json.loads(signed)
    edit(envelope)
    return json.dumps(envelope).encode()


def test_a_tampered_campaign_is_refused(keys: tuple[Path, Path]) -> None:
    _, signed = signed_campaign(keys)

    def raise_priority(envelope: dict[str, Any]) -> None:
        body = json.loads(envelope["campaign"])
        body["priority"] = 0
        envelope["campaign"] = json.dumps(body, sort_keys=True, separators=(",", ":"))

    def flip_signature(envelope: dict[str, Any]) -> None:
        raw = bytearray(base64.b64decode(envelope["signature"]))
        raw[0] ^= 1
        envelope["signature"] = base64.b64encode(raw).decode()

    for edit, words in [
        (raise_priority, "bad signature"),
        (flip_signature, "bad signature"),
        (lambda e: e.update(signature="***"), "not base64"),
        (lambda e: e.update(key_id="0123456789abcdef"), "not trusted"),
        (lambda e: e.update(format=2), "unknown signed-campaign format"),
        (lambda e: e.pop("signature"), "exactly"),
    ]:
        with pytest.raises(CampaignRejected, match=words):
            verify_campaign(retouched(signed, edit), trusted(keys[1]))
    with pytest.raises(CampaignRejected, match="not JSON"):
        verify_campaign(b"\xff" + signed, trusted(keys[1]))


def test_a_campaign_signed_by_another_key_is_refused(keys: tuple[Path, Path], tmp_path: Path) -> None:
    _, signed = signed_campaign(keys)
    _private, public = generate_key()
    (tmp_path / "other.pub").write_bytes(public)
    with pytest.raises(CampaignRejected, match="not trusted"):
        verify_campaign(signed, trusted(tmp_path / "other.pub"))


def test_a_signed_campaign_naming_a_signal_the_gateway_lacks_is_refused(keys: tuple[Path, Path]) -> None:
    _, signed = signed_campaign(keys)
    with pytest.raises(CampaignRejected, match="unknown signal") as caught:
        verify_campaign(signed, trusted(keys[1]), signals=[s for s in CATALOG if s != PAD])
    assert "trigger.condition: column 5: unknown signal" in caught.value.reason


# --- the commands ---------------------------------------------------------------------------------


def test_create_signs_and_list_shows_and_checks(
    keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "brake.toml"
    source.write_text(DOCUMENT, encoding="utf-8")
    out = tmp_path / "signed" / "brake.json"
    assert main(["campaigns", "create", str(source), "--out", str(out), "--key", str(keys[0])]) == 0
    assert "campaign brake-heat version 3" in capsys.readouterr().out
    assert verify_campaign(out.read_bytes(), trusted(keys[1])).name == "brake-heat"

    assert main(["campaigns", "list", str(out.parent), "--trusted", str(keys[1])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:4] == ["brake-heat", "3", "active", "2"]

    out.write_bytes(out.read_bytes().replace(b'\\"priority\\":2', b'\\"priority\\":0'))
    assert main(["campaigns", "list", str(out), "--trusted", str(keys[1])]) == 0
    assert "rejected" in capsys.readouterr().out


def test_create_refuses_a_bad_document_with_exit_2(
    keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "bad.json"
    doc = change("trigger.condition", "Vehicle.Speed > > 1")
    doc["expires_at"] = "2027-06-30T00:00:00Z"
    source.write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "x.json"
    assert main(["campaigns", "create", str(source), "--out", str(out), "--key", str(keys[0])]) == 2
    assert "trigger.condition: column 17: expected a value, found '>'" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("command", [["campaigns"], ["campaigns", "create"], ["campaigns", "list"]])
def test_campaign_commands_have_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: prognos " + " ".join(command))
