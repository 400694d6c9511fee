"""Tests of ``pusherd.brokers``: one contract suite over every backend, plus specifics."""
