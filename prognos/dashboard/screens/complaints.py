"""Complaints: the tickets with their SLA clocks, one ticket's clocks and audit trail, moving a
ticket on (with a conflict, never a lost update, when someone else moved it first), and a new
complaint for a customer (docs/desk.md)."""

import os

import streamlit as st

from prognos.dashboard import desk_data, desk_views, widgets
from prognos.desk.tickets import CATEGORIES
from prognos.errors import ConfigError

st.title("Complaints")
actor = st.text_input("Your name (recorded in the audit trail)", os.environ.get("USER", ""), key="desk_actor")

filters = st.columns(3)
which = filters[0].radio("Show", ["open", "all"], horizontal=True, key="tickets_which")
dealer = filters[1].selectbox("Dealer", ["all", *widgets.load(desk_data.dealers)], key="tickets_dealer")
overdue_only = filters[2].checkbox("Only overdue clocks", key="tickets_overdue")
tickets = widgets.load(desk_data.tickets, which == "open", None if dealer == "all" else dealer)
now = desk_data.now()
table = desk_views.tickets_table(tickets, now)
if overdue_only:
    table = table[table["Clock"].str.contains("overdue")]
overdue = int(table["Clock"].str.contains("overdue").sum()) if not table.empty else 0
st.caption(
    f"{len(table)} tickets, {overdue} with an SLA clock overdue. "
    "The clocks count the business hours of each dealer's calendar."
)
if table.empty:
    st.info("No ticket matches.")
else:
    widgets.paged_table(table, "tickets", size=25, wrap_on="Complaint")
    widgets.csv_download(table, "Download these tickets (CSV)", "complaints.csv", key="tickets_csv")

st.subheader("Open a ticket")
if "ticket_moved" in st.session_state:
    st.success(st.session_state.pop("ticket_moved"))
wanted = st.text_input("Complaint id", st.query_params.get("complaint", ""), key="ticket_id").strip()
if wanted:
    view = widgets.load(desk_data.ticket, wanted)
    if view is None:
        st.error(f"No complaint {widgets.plain(wanted)}.")
    else:
        ticket = view.ticket
        st.markdown(
            f"**{ticket.complaint_id}** — {desk_views.STATE_NAMES.get(ticket.state, ticket.state)}, level "
            f"{ticket.level}, {ticket.category.replace('_', ' ')}, dealer {ticket.dealer_id}, "
            f"team {ticket.team}, "
            f"customer {desk_views.text(ticket.customer_id)}, version {ticket.version}  \n"
            f"{widgets.plain(ticket.summary) or desk_views.DASH}"
        )
        for clock in view.clocks:
            note = st.warning if "overdue" in clock.text or "missed" in clock.text else st.info
            note(f"**{clock.clock.name.capitalize()} SLA**: {clock.text}")
        # The version this manager saw when deciding: a move made meanwhile by someone else is a
        # conflict, never overwritten (the script reruns and reads the ticket afresh on submit).
        seen_key = f"seen_version_{ticket.complaint_id}"
        seen_version = int(st.session_state.get(seen_key, ticket.version))
        if view.next_states:
            with st.form("move_ticket"):
                target = st.selectbox(
                    "Move to",
                    list(view.next_states),
                    format_func=lambda state: desk_views.STATE_NAMES.get(state, state),
                )
                note_text = st.text_input("Note")
                if st.form_submit_button("Move"):
                    try:
                        moved = desk_data.move_ticket(
                            ticket.complaint_id,
                            str(target),
                            actor=actor or "dashboard",
                            version=seen_version,
                            note=note_text,
                        )
                    except ConfigError as exc:
                        st.error(str(exc))
                    else:
                        state = desk_views.STATE_NAMES.get(moved.state, moved.state)
                        st.session_state["ticket_moved"] = f"{moved.complaint_id} is now {state}."
                        st.session_state[seen_key] = moved.version
                        st.rerun()
        st.session_state[seen_key] = ticket.version
        st.markdown("**Audit trail**")
        st.dataframe(
            [
                {
                    "When": desk_views.minute(entry.at),
                    "Who": entry.actor,
                    "What": entry.action,
                    "Before": desk_views.text(
                        entry.before and ", ".join(f"{k}: {v}" for k, v in entry.before.items())
                    ),
                    "After": desk_views.text(
                        entry.after and ", ".join(f"{k}: {v}" for k, v in entry.after.items())
                    ),
                }
                for entry in view.trail
            ],
            hide_index=True,
        )

st.subheader("New complaint")
with st.form("new_ticket", clear_on_submit=True):
    customer_id = st.text_input("Customer id", st.query_params.get("customer", ""))
    category = st.selectbox("Category", list(CATEGORIES), format_func=lambda name: name.replace("_", " "))
    vin = st.text_input("VIN (optional)")
    summary = st.text_input("What happened")
    if st.form_submit_button("Open the complaint"):
        try:
            opened = desk_data.open_ticket(
                customer_id=customer_id.strip(),
                category=str(category),
                summary=summary.strip(),
                actor=actor or "dashboard",
                vin=vin.strip() or None,
            )
        except ConfigError as exc:
            st.error(str(exc))
        else:
            st.success(
                f"Opened {opened.complaint_id} for dealer {opened.dealer_id} ({opened.team}); "
                "first answer due "
                f"{desk_views.minute(opened.response_due_at)}."
            )
