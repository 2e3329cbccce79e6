"""Leaves shared by every layer: argument checks, batching, devices, atomic files.

Nothing here imports the rest of pyrovae.
"""
