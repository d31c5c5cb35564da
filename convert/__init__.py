"""Offline tools (on a PC): build the int8 face model from a folder of photos per person."""
