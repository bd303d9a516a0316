"""A stand-in for a TTS program (Piper and the like), for the `command` engine tests.

    python fake_tts.py --text-file T --out W [--mode ok|fail|nothing|hang]

ok: writes a mono 16-bit 22.05 kHz WAV tone, 60 ms per character of the text
(at least 0.5 s); fail: prints a reason and exits 3; nothing: exits 0 having
written nothing; hang: sleeps far longer than any test's timeout. Standard
library only, so it starts fast under any Python.
"""

from __future__ import annotations

import argparse
import math
import struct
import sys
import time
import wave

RATE_HZ = 22_050


def write_tone(path: str, duration_s: float) -> None:
    count = int(duration_s * RATE_HZ)
    samples = (
        int(8000 * (0.5 + 0.5 * math.sin(2 * math.pi * 3 * i / RATE_HZ)) * math.sin(2 * math.pi * 180 * i / RATE_HZ))
        for i in range(count)
    )
    with wave.open(path, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE_HZ)
        handle.writeframes(b"".join(struct.pack("<h", s) for s in samples))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text-file", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--mode", default="ok", choices=["ok", "fail", "nothing", "hang"])
    args = parser.parse_args()
    with open(args.text_file, encoding="utf-8") as handle:
        text = handle.read()
    if args.mode == "fail":
        print("fake_tts: the voice model could not be loaded", file=sys.stderr)
        return 3
    if args.mode == "hang":
        time.sleep(600)
    if args.mode == "ok":
        write_tone(args.out, max(0.5, 0.06 * len(text)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
