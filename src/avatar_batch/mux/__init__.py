"""The mux stage: rendered frames + the speech master -> a probed MP4 and a poster.

`encode(frames, geometry, speech, out_dir)` runs one ffmpeg process fed raw
rgb24 frames on stdin, checks the result with ffprobe and returns a
`MuxedVideo`. `probe(path)` reads any MP4 back. The argv builders are pure
and public so their golden tests pin every flag. Imports only
`avatar_batch.core` and itself.
"""

from avatar_batch.mux.argv import encode_argv, poster_argv, poster_at_s, probe_argv
from avatar_batch.mux.encoder import POSTER_NAME, VIDEO_NAME, check_muxed, encode, frames_needed
from avatar_batch.mux.probe import ProbeResult, parse_probe_json, probe

__all__ = [
    "encode",
    "probe",
    "ProbeResult",
    "parse_probe_json",
    "encode_argv",
    "poster_argv",
    "poster_at_s",
    "probe_argv",
    "frames_needed",
    "check_muxed",
    "VIDEO_NAME",
    "POSTER_NAME",
]
