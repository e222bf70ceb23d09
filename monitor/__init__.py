"""Postback Monitor: capture, check and watch affiliate postbacks."""

__version__ = "0.1.0"
