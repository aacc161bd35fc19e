"""Emulated servers for systems that cannot run on a developer machine.

The demo estate (`make run`) and the tests both use them; product code never
imports from here or from `tests/`.
"""
