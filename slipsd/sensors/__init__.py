"""Sensors: turn raw traffic into the Zeek-format logs slips reads (see flowmeter)."""
