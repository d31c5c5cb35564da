"""Real-time face recognition on a Raspberry Pi, published over MQTT."""

__version__ = "0.1.0"
