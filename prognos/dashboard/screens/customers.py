"""Customers: whom to call first and why (the ranked call list), and one customer's whole
picture: contact, home center, risk tags with their reasons, vehicles, open alerts and
complaints, entitlements with a proof any center verifies offline, appointments, service
history, and what a dealer's failure moved (docs/desk.md)."""

import os

import streamlit as st

from prognos.dashboard import charts, desk_data, desk_views, widgets
from prognos.errors import ConfigError

HISTORY_SHOWN = 25  # newest work orders shown before "Show every order"

st.title("Customers")
expiry_days = int(
    st.number_input(
        "Warn when a warranty or maintenance package ends within (days)",
        7,
        365,
        60,
        step=7,
        key="expiry_days",
    )
)
chosen = st.query_params.get("customer", "")

search_tab, calls_tab = st.tabs(["Find a customer", "Call list"])
with calls_tab:
    limit = int(st.selectbox("Customers on the list", [25, 100, 250, 1000], index=1, key="call_limit") or 100)
    rows = widgets.load(desk_data.call_list, limit, expiry_days)
    if not rows:
        st.success("No customer carries a risk tag: nobody needs a call now.")
    else:
        st.caption(
            "Ranked by score: each risk tag adds its weight (points), more the more recent it is. "
            "Open a customer with the search above or with their id."
        )
        calls = desk_views.call_list_table(rows)
        widgets.paged_table(calls, "calls", size=25, wrap_on="Rank")
        widgets.csv_download(calls, "Download the call list (CSV)", "call-list.csv", key="calls_csv")

with search_tab:
    query = st.text_input("Name, VIN, plate or customer id", key="customer_search", placeholder="e.g. Horvat")
    if query.strip():
        hits = widgets.load(desk_data.search, query.strip())
        if not hits:
            st.warning(f"No customer matches {widgets.plain(query.strip())!s}.")
        else:
            st.table(charts.shown_table(desk_views.search_table(hits), "Customer"))
            ids = [hit.customer_id for hit in hits]
            labels = {hit.customer_id: f"{hit.name} ({hit.customer_id})" for hit in hits}
            picked = st.selectbox("Open", ids, format_func=labels.__getitem__, key="customer_pick")
            if picked:
                chosen = picked
                st.query_params["customer"] = picked

if chosen:
    view = widgets.load(desk_data.customer, chosen, expiry_days)
    if view is None:
        st.error(f"No customer {widgets.plain(chosen)}.")
        st.stop()
    st.header(f"{view.name} ({view.customer_id})")
    contact, home, score = st.columns(3)
    email, phone = (widgets.plain(value or desk_views.DASH) for value in (view.email, view.phone))
    contact.markdown(f"**Contact**  \n{email}  \n{phone}")
    if view.home is None:
        home.markdown("**Home center**  \nnone")
    else:
        dealer = view.home.dealer
        state = {"active": "", "at_risk": " — ⚠ dealer at risk", "failed": " — 🔴 dealer failed"}.get(
            dealer.status, ""
        )
        home.markdown(
            f"**Home center**  \n{widgets.plain(view.home.name)} ({view.home.center_id})  \n"
            f"dealer {widgets.plain(dealer.name)} ({dealer.dealer_id}){state}"
        )
    score.metric("Call priority", f"{view.score:.1f} points", help="the sum of the risk tags' weights")

    st.subheader("Risk tags")
    if not view.tags:
        st.success("No risk tag.")
    for tag in view.tags:
        level = desk_views.tag_level(tag.weight)
        note = {"high": st.error, "medium": st.warning, "low": st.info}[level]
        note(f"**{tag.label}** (since {desk_views.day(tag.since)}): {widgets.plain(tag.reason)}")

    for move in widgets.load(desk_data.moves, view.customer_id):
        st.info(desk_views.move_text(move))

    st.subheader(f"Vehicles ({len(view.vehicles)})")
    st.table(charts.shown_table(desk_views.vehicles_table(view), "VIN"))
    st.subheader(f"Open alerts ({len(view.open_alerts)})")
    if view.open_alerts:
        st.table(charts.shown_table(desk_views.alerts_table(view), "Severity"))
    else:
        st.caption("No open alert.")
    st.subheader(f"Open complaints ({len(view.open_complaints)})")
    if view.open_complaints:
        st.table(charts.shown_table(desk_views.complaints_table(view), "Complaint"))
        st.caption("Open a complaint on the Complaints page to answer or move it.")
    else:
        st.caption("No open complaint.")

    st.subheader(f"Entitlements ({len(view.entitlements)})")
    if view.entitlements:
        st.table(charts.shown_table(desk_views.entitlements_table(view.entitlements), "Entitlement"))
        proof_json, qr_png, carries = widgets.load(desk_data.proof, view.customer_id)
        left, right = st.columns([1, 2])
        left.image(qr_png, caption="Entitlement proof: scan at any service center", width=220)
        right.markdown(
            "The proof lists this customer's ledger entries with their hashes and the brand's "
            "signatures; any center checks it offline with the brand's public key "
            "(`prognos desk entitlements verify-proof`). "
            + (
                "The QR code carries the whole proof."
                if carries == "proof"
                else "The QR code carries its digest (the entitlements and the signed newest entry); "
                "the JSON file carries every entry."
            )
        )
        right.download_button(
            "Download the entitlement proof (JSON)",
            proof_json,
            file_name=f"entitlements-{view.customer_id}.json",
            mime="application/json",
            key="proof_json",
            on_click="ignore",
        )
    else:
        st.caption("No entitlement.")

    st.subheader(f"Open appointments ({len(view.open_appointments)})")
    if "visit_booked" in st.session_state:
        st.success(st.session_state.pop("visit_booked"))
    if view.open_appointments:
        st.table(charts.shown_table(desk_views.appointments_table(view), "Appointment"))
    else:
        st.caption("No appointment booked.")
    delivered = [v.vin for v in view.vehicles if v.delivered_at is not None]
    if delivered:
        with st.expander("Book a visit", expanded=bool(view.open_alerts)):
            names = dict(widgets.load(desk_data.centers))
            home_center = view.home.center_id if view.home is not None else None
            ids = sorted(names, key=lambda center: (center != home_center, center))
            vin = st.selectbox("Vehicle", delivered, key="book_vin")
            center = st.selectbox(
                "Service center", ids, format_func=lambda c: f"{names[c]} ({c})", key="book_center"
            )
            free = widgets.load(desk_data.slots, str(center)) if center else []
            if not free:
                st.warning("This center has no free slot in the next weeks.")
            else:
                slot = st.selectbox("Slot", free, format_func=desk_views.slot_text, key="book_slot")
                purpose = st.text_input(
                    "For", view.open_alerts[0].summary if view.open_alerts else "", key="book_purpose"
                )
                if st.button("Book this slot", key="book_button") and slot is not None:
                    try:
                        booked = desk_data.book_visit(
                            customer_id=view.customer_id,
                            vin=str(vin),
                            center_id=slot.center_id,
                            at=slot.start,
                            purpose=purpose.strip(),
                            actor=os.environ.get("USER", "dashboard"),
                        )
                    except ConfigError as exc:
                        st.error(str(exc))
                    else:
                        st.session_state["visit_booked"] = (
                            f"Booked {booked.appointment_id}: {booked.vin} at {names[booked.center_id]} on "
                            f"{desk_views.minute(booked.at)}."
                        )
                        st.rerun()
    st.subheader(f"Service history ({len(view.service_history)} work orders, newest first)")
    if view.service_history:
        everything = len(view.service_history) <= HISTORY_SHOWN or st.toggle(
            "Show every order", key="history_all"
        )
        history = desk_views.history_table(
            view, limit=len(view.service_history) if everything else HISTORY_SHOWN
        )
        st.table(charts.shown_table(history, "Order"))
    else:
        st.caption("No work order.")
