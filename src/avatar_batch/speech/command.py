"""The `command` TTS engine: a catalogue's own program (Piper, a cloud CLI, a
script) turns the answer's text file into a WAV.

`command_argv` fills the template: `{text_file}` and `{out_wav}` become
absolute paths, inside any argument, and nothing else is substituted; argv[0]
becomes the program the catalogue check found. The argv runs through
`core.proc` (never a shell) in the catalogue's folder, under the caller's
timeout; `tts` checks that what it wrote decodes. `command_version` names the
program for the job id. Knows nothing about loudness or captions.
"""

from __future__ import annotations

from pathlib import Path

from avatar_batch.core import proc
from avatar_batch.core.errors import ToolError, UnavailableError
from avatar_batch.core.fsio import file_sha256
from avatar_batch.core.records import OUT_WAV_PLACEHOLDER, TEXT_FILE_PLACEHOLDER, CommandVoice

VERSION_TIMEOUT_S = 15.0
MAX_VERSION_CHARS = 200


def command_argv(voice: CommandVoice, text_file: Path, out_wav: Path) -> list[str]:
    """The argv to run. Paths are absolute: the program runs in `voice.cwd`."""
    filled = [
        argument.replace(TEXT_FILE_PLACEHOLDER, str(text_file.absolute())).replace(
            OUT_WAV_PLACEHOLDER, str(out_wav.absolute())
        )
        for argument in voice.argv[1:]
    ]
    return [str(voice.executable), *filled]


def run_command(voice: CommandVoice, text_file: Path, out_wav: Path, timeout_s: float) -> None:
    """Run the program once; ToolError unless it exits 0 having written `out_wav`."""
    label = f"command TTS ({Path(voice.argv[0]).name})"
    proc.run(command_argv(voice, text_file, out_wav), timeout_s=timeout_s, cwd=voice.cwd, what=label)
    if not out_wav.is_file() or out_wav.stat().st_size == 0:
        raise ToolError(
            f"{label} exited without error but wrote nothing to {OUT_WAV_PLACEHOLDER}. Fix: check that its "
            f"argv passes '{OUT_WAV_PLACEHOLDER}' as the option naming the output WAV file"
        )


def command_version(executable: Path) -> str:
    """The first line `executable --version` prints, if it answers with exit 0;
    else "sha256:<digest of the executable file>", so a changed program still
    changes the job id. Not answering is expected (many scripts take no
    --version), so that failure is the designed fallback, not an error."""
    try:
        done = proc.run([str(executable), "--version"], timeout_s=VERSION_TIMEOUT_S, what=f"{executable} --version")
    except (ToolError, UnavailableError):
        done = None
    if done is not None:
        for stream in (done.stdout, done.stderr):
            lines = [line.strip() for line in stream.decode("utf-8", "replace").splitlines() if line.strip()]
            if lines:
                return lines[0][:MAX_VERSION_CHARS]
    return "sha256:" + file_sha256(executable)
