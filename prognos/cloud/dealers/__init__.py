"""Dealer data: the dealer-system (DMS) export formats and their import, dealer KPIs and the
risk early warning, and the reassignment of a closing dealer's customers (docs/dms.md)."""
