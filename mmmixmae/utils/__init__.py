"""Utilities of mmmixmae (command-line helpers live in :mod:`mmmixmae.utils.cli`)."""
