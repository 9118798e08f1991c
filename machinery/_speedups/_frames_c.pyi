"""Stub of the compiled frame scanner ``_frames_c.pyx``: the same function as the pure twin ``_frames_py``."""

from machinery._speedups._frames_py import Confirmed, Delivered

__all__ = ["scan_frames"]

def scan_frames(
    data: bytes, offset: int, deliver_channel: int, confirm_channel: int
) -> tuple[int, int, list[Delivered], list[Confirmed]]: ...
