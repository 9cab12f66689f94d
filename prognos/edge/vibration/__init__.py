"""Bearing fault classification from accelerometer windows: order-normalised envelope features
(`features`), the signal files they are read from (`signals`) and the int8 classifier the
gateway runs on LiteRT (`classifier`). Training and evaluation live in prognos.models.vibration;
docs/models.md ("Vibration") describes the method and its results on the CWRU recordings."""
