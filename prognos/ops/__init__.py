"""Operator code: the local stack (Mosquitto and InfluxDB as processes), vehicle identities with
the broker's users and ACL, and the database roles. Commands and tests call it; roles do not."""
