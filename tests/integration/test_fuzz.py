"""Fuzzing, the short pass: the record decoder, the sensor-node link, the DMS importer and the
scenario loader against the Hypothesis strategies of tests/support/fuzz_strategies.py. Only the
documented error may come out, with a message for people; valid inputs still parse to what they
hold; no case may take more than its target's CPU-time bound. benchmarks/fuzz.py runs the same
strategies for 100,000 cases per target (docs/fuzzing.md). With CI set the runs are repeatable.

Each @example is an input fuzzing once found to break its parser.

In tests/integration though it starts no server: the campaigns take 15-40 s, too long for
tests/unit, which stays under a minute.
"""

from __future__ import annotations

import os
from typing import Any

import cbor2
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from prognos.cloud.dealers.kinds import VEHICLE, Record
from prognos.link import FrameError, decode_frame
from prognos.record import DiagnosticRecord
from tests.support.fuzz_strategies import (
    SCENARIOS,
    VALID_RECORDS,
    ConditionCase,
    DmsCase,
    ScenarioCase,
    cbor,
    check_condition,
    check_dms,
    check_link,
    check_record,
    check_record_variant,
    check_scenario,
    condition_mutations,
    crafted_wire,
    dms_mutated_files,
    dms_valid_files,
    link_streams,
    record_mutations,
    record_structures,
    record_variants,
    scenario_mutations,
    scenario_rewrites,
    scenario_structures,
    valid_conditions,
)

FUZZ = settings(
    deadline=None,  # each check bounds its own CPU time; wall time depends on the machine's load
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)


def fuzz(max_examples: int) -> settings:
    return settings(FUZZ, max_examples=max_examples)


# --- the record decoder: DecodeError only, with a short message -----------------------------------


def golden_with(**changes: Any) -> bytes:
    """The first golden record with wire keys changed (k2=... is key 2)."""
    body = cbor2.loads(VALID_RECORDS[0])
    body.update({int(key[1:]): value for key, value in changes.items()})
    return cbor(body)


@fuzz(150)
@example(golden_with(k2=2**15_000))  # seq of 4,516 digits: the message was Python's int-to-text limit
@example(golden_with(k0="v" * 60_000))  # the whole version string was copied into the message
@example(golden_with(k7={"battery": [2**1100, 0.5]}))  # health beyond a double: "int too large to convert"
@given(record_structures())
def test_record_with_wrong_fields_raises_only_decode_error(data: bytes) -> None:
    check_record(data)


@fuzz(150)
@given(record_mutations())
def test_mutated_golden_records_raise_only_decode_error(data: bytes) -> None:
    check_record(data)


@fuzz(100)
@given(record_variants())
def test_record_in_other_valid_bytes_decodes_to_itself(case: tuple[bytes, DiagnosticRecord]) -> None:
    check_record_variant(case)


# --- the sensor-node link: counted, never raised ----------------------------------------------------


@fuzz(150)
@given(link_streams)
def test_link_streams_in_any_chunks_agree_with_decode_frame(case: tuple[bytes, list[int]]) -> None:
    check_link(case)


@fuzz(100)
@given(crafted_wire())
def test_frames_with_a_good_crc_reach_the_checks_behind_it(wire: bytes) -> None:
    """Frames built with a correct CRC around a wrong header or payload fail on the checks
    after the CRC (or on their size), never on the CRC or COBS: so those checks are fuzzed."""
    try:
        decode_frame(wire)
    except FrameError as exc:
        assert exc.reason in ("version", "kind", "length", "payload", "oversize")
    check_link((wire, [len(wire)]))


# --- the DMS importer: ConfigError for a file, bad rows listed with their place ----------------------


def vehicle(**values: str) -> Record:
    return {column.name: values.get(column.name) for column in VEHICLE.columns}


@fuzz(100)
@example(  # JSON Lines were cut at U+2028 (str.splitlines), so a valid row was refused
    DmsCase(
        '{"vin": "V1", "model": "EV-1", "lot": "L\u2028001"}\r\n'
        '{"vin": "V2", "model": "EV-2", "lot": "L2"}'.encode(),
        "fleet.jsonl",
        None,
        (vehicle(vin="V1", model="EV-1", lot="L\u2028001"), vehicle(vin="V2", model="EV-2", lot="L2")),
    )
)
@example(  # lines ended by \r alone: the separator was chosen from the whole file, so ";" won
    DmsCase(
        b"vin,model,lot,owner_name\rV1,EV-1,L1," + b"a;" * 30 + b"a\rV2,EV-1,L1,x",
        "fleet.csv",
        None,
        (
            vehicle(vin="V1", model="EV-1", lot="L1", owner_name="a;" * 30 + "a"),
            vehicle(vin="V2", model="EV-1", lot="L1", owner_name="x"),
        ),
    )
)
@given(dms_valid_files())
def test_valid_dms_files_give_their_records(case: DmsCase) -> None:
    check_dms(case)


@fuzz(150)
@example(DmsCase(b'[{"vin": "V1", "model": "EV-1", "lot": ' + b"1" * 5000 + b"}]", "fleet.json"))  # int limit
@example(DmsCase(b'{"vin": "V1", "model": "EV-1", "lot": ' + b"[" * 5000 + b"}", "fleet.jsonl"))  # recursion
@example(  # a lone surrogate in an id: UnicodeEncodeError out of validate()
    DmsCase(
        b'[{"dealer_id": "D1", "complaint_id": "\\ud800", "opened_at": "2024-03-01", "category": "x"}]',
        "c.json",
    )
)
@example(DmsCase(b'[{"vin": "V1", "model": "EV-1", "lot": "L1", "\\udfff": 1}]', "fleet.json"))  # unprintable
@given(dms_mutated_files())
def test_broken_dms_files_raise_config_error_or_list_bad_rows(case: DmsCase) -> None:
    check_dms(case)


# --- the scenario loader: ConfigError naming the file ------------------------------------------------

BATTERY = (SCENARIOS / "battery_drift.toml").read_text(encoding="utf-8")
BASE = SCENARIOS


@fuzz(80)
@example(ScenarioCase(BATTERY.replace("seed = 21", "seed = " + "9" * 5000), BASE))  # tomllib's ValueError
@example(ScenarioCase(BATTERY.replace("duration_days = 45", "duration_days = " + "9" * 400), BASE))  # float()
@example(ScenarioCase(BATTERY.replace('"default"', '"~prognos-no-such-user/bundle"'), BASE))  # RuntimeError
@example(ScenarioCase(BATTERY.replace('"default"', '"' + "a" * 300 + '"'), BASE))  # OSError: name too long
@given(scenario_structures())
def test_scenarios_with_wrong_values_raise_only_config_error(case: ScenarioCase) -> None:
    check_scenario(case)


@fuzz(80)
@given(scenario_mutations() | st.text(max_size=300).map(ScenarioCase))
def test_mutated_scenario_text_raises_only_config_error(case: ScenarioCase) -> None:
    check_scenario(case)


@fuzz(30)
@given(scenario_rewrites())
def test_shipped_scenarios_written_out_again_load_the_same(case: ScenarioCase) -> None:
    check_scenario(case)


# --- the campaign condition parser: ExpressionError only, pointing inside the text -----------------


@fuzz(150)
@example(ConditionCase("(" * 5000))  # nesting: refused at the depth limit, not by Python's recursion
@example(ConditionCase("1" * 400 + " > 0"))  # a long number, no int-to-text limit
@example(ConditionCase("Vehicle.Speed > 1e308 * 10"))  # an overflow while evaluating is unknown
@given(condition_mutations() | st.text(max_size=200).map(ConditionCase))
def test_mutated_conditions_raise_only_expression_error(case: ConditionCase) -> None:
    check_condition(case)


@fuzz(100)
@given(valid_conditions())
def test_well_typed_conditions_parse_and_evaluate_to_a_truth_value(case: ConditionCase) -> None:
    check_condition(case)
