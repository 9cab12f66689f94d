"""Diagnosis reports end to end, on the real broker and InfluxDB and a desk on SQLite and on a
real PostgreSQL: a record that raises an alert becomes a stored report with the evidence, the
trend, the parts with the stock of the nearest capable centers, their free slots and the owner;
the center's webhook gets it signed (a first failing answer is retried) and its mailbox gets it
from a real SMTP server (aiosmtpd). A redelivered record and a restarted worker report nothing
again; an escalation reports once more. And `prognos cloud reports run` as the command runs it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from aiosmtpd.controller import Controller
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import Engine, func, insert, select

from prognos.cli import main
from prognos.cloud.dealers.dms_import import import_files
from prognos.cloud.ingest.points import record_lines
from prognos.cloud.reports.notify import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    MailSender,
    WebhookSender,
    verify_signature,
)
from prognos.cloud.reports.sources import InfluxSources
from prognos.cloud.reports.worker import Channels, ReportWorker, WorkerSettings
from prognos.cloud.storage.client import InfluxClient
from prognos.desk import schema
from prognos.desk.alerts import alert_id
from prognos.desk.reports import DeskReports, list_reports, report_detail
from prognos.desk.store import connect
from prognos.ops.stack import free_port
from prognos.ops.state import StackInfo
from prognos.record import DiagnosticRecord, FaultHypothesis, SubsystemState, Trigger, encode_record
from prognos.topics import diag_topic
from tests.support.helpers import wait_for

VIN, OTHER = "WVWZZZ1KZ6W000001", "WVWZZZ1KZ6W000002"
PADS = "brakes.pad_wear"
SECRET = b"a webhook secret of some length"
NOW = datetime.now(UTC).replace(microsecond=0)
END_MS = int((NOW - timedelta(minutes=5)).timestamp() * 1000)
MINUTE_MS = 60_000


def record(
    seq: int,
    end_ms: int,
    *,
    faults: tuple[FaultHypothesis, ...] = (),
    brakes: float = 0.6,
    vin: str = VIN,
    battery: float = 0.9,
) -> DiagnosticRecord:
    return DiagnosticRecord(
        vin=vin,
        seq=seq,
        window_start_ms=end_ms - 10 * MINUTE_MS,
        window_end_ms=end_ms,
        model_id="rules",
        model_version="0.1",
        trigger=Trigger.ANOMALY if faults else Trigger.HEARTBEAT,
        subsystems={
            "brakes": SubsystemState(brakes, 1.1 if faults else 0.2),
            "battery": SubsystemState(battery, 0.1),
            "tires": SubsystemState(0.95, 0.05),
        },
        faults=faults,
        counters={"frames_seen": 4800, "frames_bad": 1},
    )


def pads(days: float) -> FaultHypothesis:
    return FaultHypothesis(PADS, 0.8, days, days * 0.6, days * 1.5)


# ---------------------------------------------------------------- the desk, the DMS data, the history


def seeded_desk(url: str) -> Engine:
    engine = connect(url)
    with engine.begin() as c:
        for dealer in ("D1", "D2"):
            c.execute(
                insert(schema.dealer).values(
                    dealer_id=dealer,
                    name=f"Dealer {dealer}",
                    region="north",
                    timezone="UTC",
                    workdays="1234567",
                )
            )
        for center, dealer, lat, lon, skills in (
            ("SC-HAM", "D1", 53.55, 10.0, "brakes;tires"),
            ("SC-KIE", "D2", 54.32, 10.13, ""),
            ("SC-MUC", "D2", 48.14, 11.58, "battery"),
            ("SC-BER", "D1", 52.52, 13.4, ""),
        ):
            c.execute(
                insert(schema.service_center).values(
                    center_id=center,
                    dealer_id=dealer,
                    name=f"Workshop {center}",
                    lat=lat,
                    lon=lon,
                    skills=skills,
                    capacity_per_week=40,
                    technicians=2,
                )
            )
        c.execute(
            insert(schema.customer).values(
                customer_id="C000001",
                name="Ada Lovelace",
                name_key="ada lovelace",
                email="ada@example.org",
                phone="+49 40 1234",
                home_center="SC-HAM",
                created_at=NOW,
            )
        )
        c.execute(insert(schema.vehicle).values(vin=VIN, customer_id="C000001", model="EV-1"))
    return engine


def import_dms(influx: InfluxClient, database: str, folder: Path) -> None:
    stock = folder / "stock.csv"
    stock.write_text(
        "dealer_id,service_center,part,on_hand,on_order,lead_time_weeks,as_of\n"
        "D1,SC-HAM,PG-BRK-3100,0,4,1,2026-01-05T08:00:00Z\n"
        "D2,SC-KIE,PG-BRK-3100,6,0,2,2026-01-05T08:00:00Z\n"
    )
    master = folder / "parts.csv"
    master.write_text("part,name,unit_cost,currency\nPG-BRK-3100,Brake pad set front axle,84.50,EUR\n")
    import_files(influx, database, [stock, master])


def write_history(influx: InfluxClient, database: str, fleet: str) -> None:
    lines = [
        line
        for hour in range(1, 30)
        for line in record_lines(
            fleet, record(100 + hour, END_MS - hour * 3_600_000, brakes=0.6 + 0.004 * hour)
        )
    ]
    influx.write(database, lines, precision="ms")


# ---------------------------------------------------------------- the center's webhook and mailbox


class Webhook:
    """A local HTTP server that answers `failures` requests with 500, then 200s; it keeps every
    request (headers, body) and whether its signature held."""

    def __init__(self, failures: int = 1) -> None:
        self.requests: list[tuple[dict[str, str], bytes, bool]] = []
        self.failures = failures
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                valid = verify_signature(
                    SECRET,
                    body,
                    timestamp=self.headers.get(TIMESTAMP_HEADER),
                    signature=self.headers.get(SIGNATURE_HEADER),
                    now_s=time.time(),
                )
                hook.requests.append((dict(self.headers), body, valid))
                status = 500 if len(hook.requests) <= hook.failures else (200 if valid else 401)
                self.send_response(status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/prognos"
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class Mailbox:
    """aiosmtpd's handler: every message delivered, as parsed e-mail."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


# ---------------------------------------------------------------- running a worker


FAST = WorkerSettings(
    builders=2,
    batch_wait_s=0.02,
    notify_base_s=0.05,
    notify_cap_s=0.2,
    notify_poll_s=0.05,
    retry_base_s=0.05,
    retry_cap_s=0.5,
)


@contextmanager
def running(
    stack: StackInfo, store: DeskReports, database: str, fleet: str, group: str, channels: Channels
) -> Iterator[ReportWorker]:
    worker = ReportWorker(
        host=stack.mqtt_host,
        port=stack.mqtt_port,
        store=store,
        sources=InfluxSources(connect=lambda: InfluxClient(stack.influx_url), database=database),
        channels=channels,
        group=group,
        fleet=fleet,
        client_id=f"reports-{group}",
        settings=FAST,
    )
    stop = threading.Event()
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            worker.run(stop)
        except BaseException as exc:  # raised in the test below
            outcome.append(exc)

    worker.start()
    worker.wait_subscribed(15)
    thread = threading.Thread(target=run, name="report-worker")
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(30)
    assert not outcome, outcome


def publish(stack: StackInfo, fleet: str, *records: DiagnosticRecord) -> None:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.connect(stack.mqtt_host, stack.mqtt_port)
    client.loop_start()
    try:
        sent = [client.publish(diag_topic(fleet, r.vin), encode_record(r), qos=1) for r in records]
        for item in sent:
            item.wait_for_publish(15)
            assert item.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def reports_of(engine: Engine) -> list[Any]:
    with engine.connect() as c:
        return list(reversed(list_reports(c, limit=100)))


# ---------------------------------------------------------------- the tests


def test_a_raised_alert_becomes_a_stored_report_sent_by_webhook_and_e_mail(
    stack: StackInfo,
    influx: InfluxClient,
    database: str,
    fleet: str,
    desk_url: str,
    tmp_path: Path,
    webhook: Webhook,
    mailbox: tuple[Mailbox, int],
) -> None:
    engine = seeded_desk(desk_url)
    import_dms(influx, database, tmp_path)
    write_history(influx, database, fleet)
    box, smtp_port = mailbox
    sender = WebhookSender(secret=SECRET)
    channels = Channels(
        webhook_url=webhook.url,
        webhook=sender,
        mail_to=("service@sc-ham.example",),
        mail=MailSender(host="127.0.0.1", port=smtp_port, sender="prognos@brand.example"),
    )
    group = f"r{uuid.uuid4().hex[:10]}"
    store = DeskReports(engine)
    first = record(1, END_MS, faults=(pads(30.0),))
    try:
        with running(stack, store, database, fleet, group, channels) as worker:
            publish(stack, fleet, first)
            stored = wait_for(lambda: reports_of(engine), what="the report in the desk", timeout_s=20)
            assert len(stored) == 1
            report = stored[0]
            assert (report.vin, report.code, report.priority, report.event) == (VIN, PADS, "P2", "raised")
            assert report.alert_id == alert_id(VIN, PADS) and report.center_id == "SC-HAM"
            assert report.published_at == datetime.fromtimestamp(END_MS / 1000, UTC)
            with engine.connect() as c:
                detail = report_detail(c, report.report_id)
            body = detail.body
            assert len(body["evidence"]["series"]) == 30  # 29 stored hours and this record
            assert body["evidence"]["thresholds"]["act_health"] == 0.2
            assert body["trend"]["days"] == 30.0 and body["trend"]["days_low"] == 18.0
            assert body["causes"] == []
            assert [(p["part"], p["name"], p["unit_cost"]) for p in body["parts"]] == [
                ("PG-BRK-3100", "Brake pad set front axle", 84.5)
            ]
            centers = body["centers"]
            assert [c["center_id"] for c in centers] == ["SC-HAM", "SC-KIE", "SC-BER"]  # MUC lacks brakes
            assert (
                centers[0]["home"]
                and centers[0]["stock"][0]["status"] == "0 in stock, 4 on order, lead time 1 week"
            )
            assert centers[1]["stock"][0]["status"] == "in stock: 6"
            assert all(len(c["slots"]) == 3 for c in centers)
            assert min(datetime.fromisoformat(s) for s in centers[0]["slots"]) > NOW
            assert body["contact"] == {
                "source": "desk",
                "customer_id": "C000001",
                "name": "Ada Lovelace",
                "email": "ada@example.org",
                "phone": "+49 40 1234",
                "home_center": "SC-HAM",
            }
            assert "No classifier output in this record" in detail.html

            # The webhook: a 500 first, then the same delivery again, signed both times.
            wait_for(lambda: len(webhook.requests) >= 2, what="the webhook's retry", timeout_s=20)
            (h1, b1, ok1), (h2, b2, ok2) = webhook.requests[:2]
            assert ok1 and ok2 and b1 == b2 and h1[DELIVERY_HEADER] == h2[DELIVERY_HEADER]
            envelope = json.loads(b2)
            assert envelope["report_id"] == report.report_id and envelope["center_id"] == "SC-HAM"
            assert envelope["report"]["vin"] == VIN

            # The e-mail, through a real SMTP server.
            wait_for(lambda: box.messages, what="the e-mail", timeout_s=20)
            recipients, mail = box.messages[0]
            assert recipients == ["service@sc-ham.example"]
            assert mail["Subject"] == f"[Prognos P2] {PADS} on {VIN}: new alert"
            parts = {part.get_content_type(): part.get_payload(decode=True) for part in mail.walk()}
            assert report.report_id.encode() in parts["text/plain"]
            assert b"<!DOCTYPE html>" in parts["text/html"]

            def sent() -> bool:
                with engine.connect() as c:
                    rows = report_detail(c, report.report_id).notifications
                return all(n.status == "sent" for n in rows)

            wait_for(sent, what="both notifications marked sent")
            with engine.connect() as c:
                notes = {n.channel: n for n in report_detail(c, report.report_id).notifications}
            assert notes["webhook"].attempts == 2 and notes["webhook"].last_error == ""
            assert notes["email"].attempts == 1 and notes["webhook"].sent_at is not None

            # The same record again (a redelivery), then a more urgent one: one more report.
            publish(stack, fleet, first, record(2, END_MS + MINUTE_MS, faults=(pads(9.0),)))
            wait_for(lambda: len(reports_of(engine)) >= 2, what="the escalation's report")
            time.sleep(0.5)
            escalated = reports_of(engine)
            assert [(r.event, r.priority) for r in escalated] == [("raised", "P2"), ("escalated", "P1")]
            assert worker.stats.raised == 1 and worker.stats.escalated == 1
        # A restarted worker (nothing remembered but the desk): the open alert is not reported
        # again; a new alert of another vehicle is.
        with running(stack, store, database, fleet, group, Channels()) as again:
            publish(
                stack,
                fleet,
                record(3, END_MS + 2 * MINUTE_MS, faults=(pads(8.0),)),
                record(1, END_MS + 2 * MINUTE_MS, vin=OTHER, battery=0.1),
            )
            wait_for(lambda: len(reports_of(engine)) >= 3, what="the other vehicle's report")
            time.sleep(0.5)
            latest = reports_of(engine)
            assert [(r.vin, r.code) for r in latest[2:]] == [(OTHER, "battery.low_health")]
            assert again.stats.reports == 1
        other = latest[2]
        with engine.connect() as c:
            body = report_detail(c, other.report_id).body
        assert body["contact"]["source"] == "none"  # not a desk customer, not in the registry
        assert [c["center_id"] for c in body["centers"]] == ["SC-BER", "SC-KIE", "SC-MUC"]  # no home: by id
    finally:
        sender.close()
        engine.dispose()


def test_a_webhook_that_keeps_failing_is_given_up_recorded_and_sent_again_on_request(
    stack: StackInfo, influx: InfluxClient, database: str, fleet: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    engine = seeded_desk(url)
    hook = Webhook(failures=3)
    sender = WebhookSender(secret=SECRET)
    group = f"r{uuid.uuid4().hex[:10]}"
    settings_attempts = 3
    try:
        worker_settings = WorkerSettings(**{**FAST.__dict__, "notify_attempts": settings_attempts})
        store = DeskReports(engine)
        worker = ReportWorker(
            host=stack.mqtt_host,
            port=stack.mqtt_port,
            store=store,
            sources=InfluxSources(connect=lambda: InfluxClient(stack.influx_url), database=database),
            channels=Channels(webhook_url=hook.url, webhook=sender),
            group=group,
            fleet=fleet,
            settings=worker_settings,
        )
        stop = threading.Event()
        worker.start()
        worker.wait_subscribed(15)
        thread = threading.Thread(target=worker.run, args=(stop,), name="report-worker")
        thread.start()
        try:
            publish(stack, fleet, record(1, END_MS, faults=(pads(5.0),)))
            report = wait_for(lambda: reports_of(engine), what="the report")[0]

            def status() -> str:
                with engine.connect() as c:
                    return report_detail(c, report.report_id).notifications[0].status

            wait_for(lambda: status() == "failed", what="the webhook given up")
            assert len(hook.requests) == 3 and worker.stats.notifications_given_up == 1
            with engine.connect() as c:
                note = report_detail(c, report.report_id).notifications[0]
            assert note.attempts == 3 and "answered 500" in note.last_error
            assert main(["desk", "reports", "resend", report.report_id, "--db", url]) == 0
            wait_for(lambda: status() == "sent", what="the webhook sent after resend")
            assert len(hook.requests) == 4 and hook.requests[-1][2]
        finally:
            stop.set()
            thread.join(30)
    finally:
        sender.close()
        hook.close()
        engine.dispose()


def test_the_reports_command_runs_the_worker_and_the_desk_commands_read_and_export(
    stack: StackInfo,
    influx: InfluxClient,
    database: str,
    fleet: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    engine = seeded_desk(url)
    import_dms(influx, database, tmp_path)
    hook = Webhook(failures=0)
    secret = tmp_path / "webhook.secret"
    secret.write_bytes(SECRET + b"\n")
    group = f"r{uuid.uuid4().hex[:10]}"
    argv = [
        sys.executable, "-m", "prognos.cli", "cloud", "reports", "run", "--home", stack.home, "--database",
        database, "--db", url, "--fleet", fleet, "--group", group, "--client-id", f"cli-{group}",
        "--webhook", hook.url, "--webhook-secret-file", str(secret),
    ]  # fmt: skip
    log = tmp_path / "worker.log"
    try:
        with log.open("wb") as out:
            worker = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
            try:
                wait_for(lambda: b"reports: $share/" in log.read_bytes(), what="the worker's start line")
                time.sleep(1.0)  # its subscription
                publish(stack, fleet, record(1, END_MS, faults=(pads(12.0),)))
                wait_for(lambda: reports_of(engine), what="the report", timeout_s=30)
                wait_for(lambda: hook.requests, what="the webhook")
            finally:
                worker.send_signal(signal.SIGTERM)
                assert worker.wait(30) == 0
        output = log.read_text()
        assert "notifications: webhook" in output and "1 raised, 0 escalated, 1 reports stored" in output
        assert hook.requests[0][2]
        report_id = reports_of(engine)[0].report_id

        assert main(["desk", "reports", "list", "--db", url, "--vin", VIN]) == 0
        listed = capsys.readouterr().out
        assert report_id in listed and "P1 raised" in listed and "-> SC-HAM" in listed
        assert main(["desk", "reports", "show", report_id, "--db", url]) == 0
        shown = capsys.readouterr().out
        assert shown.startswith(f"P1 {PADS} on {VIN}: raised as P1") and "- webhook to http://" in shown
        out = tmp_path / "report.html"
        assert main(["desk", "reports", "export", report_id, "--db", url, "--out", str(out)]) == 0
        page = out.read_text()
        assert "self-contained" in capsys.readouterr().out
        assert page.startswith("<!DOCTYPE html>") and "Workshop SC-HAM" in page
        assert "http://" not in page and "https://" not in page
        assert main(["desk", "reports", "show", "RP-nothing", "--db", url]) == 2
        assert "no diagnosis report" in capsys.readouterr().err
        with engine.connect() as c:
            assert c.execute(select(func.count()).select_from(schema.report_state)).scalar_one() == 1
    finally:
        hook.close()
        engine.dispose()


def test_the_vehicle_page_shows_the_vehicles_reports_and_offers_each_as_html(
    stack: StackInfo, database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from prognos.cloud.reports.alerting import decide, record_alerts
    from prognos.cloud.reports.render import render_html
    from prognos.cloud.reports.report import Contact, build_report, to_dict

    url = f"sqlite:///{tmp_path / 'desk.db'}"
    engine = seeded_desk(url)
    store = DeskReports(engine)
    for seq, days in ((1, 30.0), (2, 9.0)):
        rec = record(seq, END_MS + seq * MINUTE_MS, faults=(pads(days),))
        found = record_alerts(rec)[0]
        at = datetime.fromtimestamp(rec.window_end_ms / 1000, UTC)
        decision = decide(store.states([(VIN, PADS)]).get((VIN, PADS)), found, at)
        context = store.context(VIN, "brakes", home=None, now=NOW, centers=3, slots=2)
        report = build_report(
            fleet="demo",
            record=rec,
            alert=found,
            trigger=decision.trigger or "raised",
            previous_priority=decision.previous.priority if decision.previous else None,
            alert_id=store.alert_id(VIN, PADS),
            created_at=NOW + timedelta(seconds=seq),
            received_at=NOW,
            causes=[("brakes.pad_wear.front_axle", 0.7)] if seq == 2 else [],
            centers=context.centers,
            slots=context.slots,
            contact=context.contact or Contact(source="none"),
        )
        assert store.save(report, to_dict(report), render_html(report), decision, [])
    monkeypatch.setenv("PROGNOS_DESK_DB", url)
    monkeypatch.setenv("PROGNOS_INFLUX_URL", stack.influx_url)
    monkeypatch.setenv("PROGNOS_DATABASE", database)
    st.cache_data.clear()
    st.cache_resource.clear()
    try:
        app = AppTest.from_file(
            str(Path(__file__).resolve().parents[2] / "prognos/dashboard/app.py"), default_timeout=30
        )
        app.query_params["vin"] = VIN
        app.switch_page("screens/vehicle.py")
        app.run()
        assert not app.exception, app.exception
        labels = [e.label for e in app.expander]
        assert labels[0] == f"P1 · {PADS} · escalated from P2 {NOW + timedelta(seconds=2):%Y-%m-%d %H:%M} UTC"
        assert labels[1].startswith(f"P2 · {PADS} · raised")
        shown = "\n".join(str(m.value) for m in [*app.markdown, *app.caption]).replace("\\", "")
        assert (
            "Fault brakes.pad_wear on the brakes: failure expected in 9 days (80% interval 5-14 days)"
            in shown
        )
        assert "Not sent: no webhook or e-mail was configured" in shown
        assert "No classifier output in this record." in shown  # the older report
        assert "Owner: Ada Lovelace, C000001 (ada@example.org, +49 40 1234); home center SC-HAM" in shown
        tables = [t.value.reset_index() for t in app.table]
        centers = next(t for t in tables if "Center" in t.columns)
        assert list(centers["Center"])[:2] == ["Workshop SC-HAM (SC-HAM)", "Workshop SC-KIE (SC-KIE)"]
        assert centers.iloc[0]["Distance"] == "home center"
        causes = next(t for t in tables if "Cause" in t.columns)
        assert (
            list(causes["Cause"]) == ["brakes.pad_wear.front_axle"] and causes.iloc[0]["Confidence"] == "70%"
        )
        assert "None" not in "".join(t.to_string() for t in tables)
        buttons = app.get("download_button")
        assert len(buttons) == 2 and buttons[0].proto.label == "Download the report (HTML)"
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()
        engine.dispose()
