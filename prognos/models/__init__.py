"""Training, export and evaluation of the detectors the agent runs."""
