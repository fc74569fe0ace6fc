"""Spatial inventory of stock spaces in old residential communities."""

__version__ = "0.1.0"
