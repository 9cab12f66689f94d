"""The gateway agent: acquisition, windows, features, detectors, uplink."""
