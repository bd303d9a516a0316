"""Bad files named by a catalogue: missing, outside the project, of the wrong
size or format, unreadable; and a catalogue file that is not there."""

from __future__ import annotations

import io

from PIL import Image

from tests.hardening.bad_inputs import (
    CATALOGUE,
    FIRST,
    BadCase,
    case_collector,
    edit_text,
    outside_file,
    png_header_only,
    set_audio,
    set_image,
    set_prompt_file,
    wav_bytes,
)

CASES: list[BadCase] = []
case = case_collector(CASES)


# --- references -------------------------------------------------------------------


@case(66, r"nowhere\.yaml", "does not exist")
def catalogue_missing(p):
    return p.catalogue.with_name("nowhere.yaml")


@case(66, "questions", "cannot be read")
def catalogue_is_a_folder(p):
    return p.catalogue.parent


@case(65, CATALOGUE, "field 'personas.dr_chen.image'", "not found")
def image_missing(p):
    return set_image(p, "../assets/nobody.png")


@case(65, CATALOGUE, "field 'personas.dr_chen.image'", "absolute")
def image_absolute(p):
    return set_image(p, str(p.root / "assets" / "dr_chen.png"))


@case(65, CATALOGUE, "field 'personas.dr_chen.image'", "climbs out")
def image_dotdot_escape(p):
    return set_image(p, "../../../../../../etc/hostname")


@case(65, CATALOGUE, "field 'personas.dr_chen.image'", "symlink")
def image_symlink_outside(p):
    target = outside_file(p, "face.png", (p.root / "assets" / "dr_chen.png").read_bytes())
    (p.root / "assets" / "link.png").symlink_to(target)
    return set_image(p, "../assets/link.png")


@case(65, CATALOGUE, "field 'personas.dr_chen.image'", "not found")
def image_symlink_dangling(p):
    (p.root / "assets" / "dangling.png").symlink_to(p.root / "assets" / "gone.png")
    return set_image(p, "../assets/dangling.png")


@case(65, CATALOGUE, "field 'personas.dr_chen.image'", "loop")
def image_symlink_loop(p):
    (p.root / "assets" / "a.png").symlink_to(p.root / "assets" / "b.png")
    (p.root / "assets" / "b.png").symlink_to(p.root / "assets" / "a.png")
    return set_image(p, "../assets/a.png")


@case(65, CATALOGUE, "field 'personas.dr_chen.image'", "not a file")
def image_is_a_folder(p):
    return set_image(p, "../assets")


@case(65, CATALOGUE, FIRST, "field 'audio.en'", "not found")
def recording_missing(p):
    return set_audio(p, "../assets/nothing.wav")


@case(65, CATALOGUE, FIRST, "field 'audio.en'", "symlink")
def recording_symlink_outside(p):
    target = outside_file(p, "voice.wav", wav_bytes())
    (p.root / "assets" / "voice.wav").symlink_to(target)
    return set_audio(p, "../assets/voice.wav")


@case(65, CATALOGUE, FIRST, "field 'audio.en'", "extension")
def recording_with_a_text_extension(p):
    return set_audio(p, "../prompts/doctor.txt")


@case(65, CATALOGUE, "field 'personas.dr_chen.prompt'", "not found")
def prompt_missing(p):
    return edit_text(p, "prompt: ../prompts/doctor.txt", "prompt: ../prompts/nobody.txt")


@case(65, CATALOGUE, "field 'personas.dr_chen.prompt'", "patient_name")
def prompt_unknown_placeholder(p):
    return set_prompt_file(p, b"Identity: a doctor speaking to {patient_name}.")


@case(65, CATALOGUE, "field 'personas.dr_chen.prompt'", "empty")
def prompt_empty(p):
    return set_prompt_file(p, b"  \n")


@case(65, CATALOGUE, "field 'personas.dr_chen.prompt'", "over")
def prompt_too_big(p):
    return set_prompt_file(p, b"A doctor. " * 7000)


# --- sizes and formats of assets ----------------------------------------------------


@case(65, CATALOGUE, "field 'personas.dr_chen.image'", "cannot be decoded")
def image_zero_bytes(p):
    (p.root / "assets" / "empty.png").write_bytes(b"")
    return set_image(p, "../assets/empty.png")


@case(65, CATALOGUE, "field 'personas.dr_chen.image'", "10×10")
def image_ten_by_ten(p):
    Image.new("RGB", (10, 10), (200, 170, 150)).save(p.root / "assets" / "tiny.png")
    return set_image(p, "../assets/tiny.png")


@case(65, CATALOGUE, "field 'personas.dr_chen.image'", "cannot be decoded")
def image_huge_dimensions_header(p):
    (p.root / "assets" / "huge.png").write_bytes(png_header_only(100_000, 100_000))
    return set_image(p, "../assets/huge.png")


@case(65, CATALOGUE, "field 'personas.dr_chen.image'", "cannot be decoded")
def image_png_that_is_text(p):
    (p.root / "assets" / "text.png").write_text("this is not a picture\n")
    return set_image(p, "../assets/text.png")


@case(65, CATALOGUE, "field 'personas.dr_chen.image'", "cannot be decoded")
def image_png_truncated(p):
    data = (p.root / "assets" / "dr_chen.png").read_bytes()
    (p.root / "assets" / "cut.png").write_bytes(data[: len(data) // 2])
    return set_image(p, "../assets/cut.png")


@case(65, CATALOGUE, "field 'personas.dr_chen.image'", "cannot be decoded")
def image_png_that_is_a_truncated_jpeg(p):
    buffer = io.BytesIO()
    Image.open(p.root / "assets" / "dr_chen.png").convert("RGB").save(buffer, "JPEG")
    (p.root / "assets" / "cut-jpeg.png").write_bytes(buffer.getvalue()[:2000])
    return set_image(p, "../assets/cut-jpeg.png")


@case(65, CATALOGUE, FIRST, "field 'audio.en'", "not a WAV")
def recording_wav_that_is_text(p):
    (p.root / "assets" / "text.wav").write_text("RIFF? no, just words\n")
    return set_audio(p, "../assets/text.wav")


@case(65, CATALOGUE, FIRST, "field 'audio.en'", "truncated")
def recording_wav_truncated(p):
    data = wav_bytes(1.0)
    (p.root / "assets" / "cut.wav").write_bytes(data[: len(data) // 3])
    return set_audio(p, "../assets/cut.wav")


@case(65, CATALOGUE, FIRST, "field 'audio.en'", "empty")
def recording_zero_bytes(p):
    (p.root / "assets" / "empty.wav").write_bytes(b"")
    return set_audio(p, "../assets/empty.wav")


@case(65, CATALOGUE, FIRST, "field 'audio.en'", "no audio")
def recording_wav_without_samples(p):
    (p.root / "assets" / "silent.wav").write_bytes(wav_bytes(0.0))
    return set_audio(p, "../assets/silent.wav")


@case(65, CATALOGUE, FIRST, "field 'audio.en'", "not an MP3")
def recording_mp3_that_is_text(p):
    (p.root / "assets" / "text.mp3").write_text("not music\n")
    return set_audio(p, "../assets/text.mp3")


# --- permissions --------------------------------------------------------------------


@case(66, CATALOGUE, "cannot be read", unreadable=True)
def catalogue_unreadable(p):
    p.catalogue.chmod(0)
    return p.catalogue


@case(65, CATALOGUE, "field 'personas.dr_chen.image'", "cannot be read", unreadable=True)
def image_unreadable(p):
    (p.root / "assets" / "dr_chen.png").chmod(0)
    return p.catalogue


@case(65, CATALOGUE, "field 'personas.dr_chen.prompt'", "cannot be read", unreadable=True)
def prompt_unreadable(p):
    (p.root / "prompts" / "doctor.txt").chmod(0)
    return p.catalogue


@case(65, CATALOGUE, FIRST, "field 'audio.en'", "cannot be read", unreadable=True)
def recording_unreadable(p):
    (p.root / "assets" / "locked.wav").write_bytes(wav_bytes())
    (p.root / "assets" / "locked.wav").chmod(0)
    return set_audio(p, "../assets/locked.wav")
