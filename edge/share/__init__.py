"""The household's face library shared through the MQTT broker (library.share; docs/household.md)."""
