"""Shared test helpers (importable as ``helpers``: ``pytest.ini`` puts ``tests/`` on the path).

One module per concern; test modules import from here, never from each other.
"""
