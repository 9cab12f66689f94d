"""Data-collection campaigns defined in the cloud and run on gateways (docs/campaigns.md).

The documents, their condition language and their signatures live here, in the core, because
both sides read them: the cloud's `prognos campaigns` commands write and sign them, the gateway
verifies and evaluates them.
"""
