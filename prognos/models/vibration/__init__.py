"""Training and evaluation of the bearing fault classifier (prognos.edge.vibration runs it)."""
