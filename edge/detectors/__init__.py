"""Detector backends; use edge.detect.create_detector rather than these directly."""
