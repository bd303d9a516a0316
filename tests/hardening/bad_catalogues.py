"""Bad catalogues: YAML syntax, encodings and schema, each wrong in its own way."""

from __future__ import annotations

from tests.hardening.bad_inputs import (
    CATALOGUE,
    FIRST,
    BadCase,
    case_collector,
    edit_data,
    edit_text,
    set_prompt_file,
)

CASES: list[BadCase] = []
case = case_collector(CASES)


# --- syntax -----------------------------------------------------------------------


@case(65, CATALOGUE + r":\d+", "YAML syntax error")
def yaml_unclosed_quote(p):
    return edit_text(p, 'question: "Where do I register?"', 'question: "Where do I register?')


@case(65, CATALOGUE + r":\d+", "YAML syntax error")
def yaml_tab_indent(p):
    return edit_text(p, '    answer: "Please', '\tanswer: "Please')


@case(65, CATALOGUE + r":\d+", FIRST, "field 'answer'", "written twice")
def yaml_duplicate_key(p):
    return edit_text(
        p,
        '    answer: "Please register in the hall."',
        '    answer: "Please register in the hall."\n    answer: "Again."',
    )


@case(65, CATALOGUE + r":\d+", "python/object")
def yaml_python_object_tag(p):
    return edit_text(p, "version: 1", 'version: 1\nevil: !!python/object/apply:os.system ["touch PWNED"]')


@case(65, CATALOGUE, "aliases")
def yaml_alias_bomb(p):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 7)]
    return edit_text(p, "version: 1", "version: 1\n" + "\n".join(lines))


@case(65, CATALOGUE, "cycle")
def yaml_alias_cycle(p):
    return edit_text(p, "version: 1", "version: 1\nloop: &loop [*loop]")


@case(65, CATALOGUE, "deeper")
def yaml_nesting_too_deep(p):
    return edit_text(p, "version: 1", "version: 1\ndeep: " + "[" * 100 + "]" * 100)


@case(65, CATALOGUE, "empty")
def empty_file(p):
    p.catalogue.write_bytes(b"")
    return p.catalogue


@case(65, CATALOGUE, "mapping")
def top_level_is_a_list(p):
    p.catalogue.write_text("- version: 1\n- entries: []\n", encoding="utf-8")
    return p.catalogue


# --- encodings --------------------------------------------------------------------


@case(65, CATALOGUE, "not UTF-8")
def latin1_bytes(p):
    text = p.catalogue.read_text(encoding="utf-8").replace("in the hall", "in the café")
    p.catalogue.write_bytes(text.encode("latin-1"))
    return p.catalogue


@case(65, CATALOGUE, "not UTF-8")
def utf16_with_bom(p):
    p.catalogue.write_bytes(p.catalogue.read_text(encoding="utf-8").encode("utf-16"))
    return p.catalogue


@case(65, CATALOGUE, "cannot read the YAML")
def utf16_without_bom(p):
    p.catalogue.write_bytes(p.catalogue.read_text(encoding="utf-8").encode("utf-16-le"))
    return p.catalogue


@case(65, CATALOGUE + r":6\b", "field 'defaults.preset'", "quik")
def utf8_bom_keeps_line_numbers(p):
    edit_text(p, "preset: quick", "preset: quik")
    p.catalogue.write_bytes(b"\xef\xbb\xbf" + p.catalogue.read_bytes())
    return p.catalogue


@case(65, CATALOGUE, "cannot read the YAML")
def nul_byte_in_text(p):
    return edit_text(p, "in the hall", "in the\0hall")


@case(65, CATALOGUE, "field 'personas.dr_chen.image'", "NUL")
def nul_in_a_path(p):
    return edit_text(p, "image: ../assets/dr_chen.png", 'image: "../assets/dr\\0chen.png"')


@case(65, r"doctor\.txt|bad\.txt", "field 'personas.dr_chen.prompt'", "not UTF-8")
def prompt_in_latin1(p):
    return set_prompt_file(p, "Identity: a doctor in the {department} département.".encode("latin-1"))


# --- schema -----------------------------------------------------------------------


@case(65, CATALOGUE, "field 'version'")
def missing_version(p):
    return edit_data(p, lambda d: d.pop("version"))


@case(65, CATALOGUE + r":\d+", "field 'version'", "unsupported catalogue version")
def future_version(p):
    return edit_text(p, "version: 1", "version: 2")


@case(65, CATALOGUE + r":\d+", FIRST, "answr")
def misspelt_entry_key(p):
    return edit_text(p, '    answer: "Please', '    answr: "Please')


@case(65, CATALOGUE, r"entry 'a/\.\./b'", "field 'id'")
def entry_id_with_slashes(p):
    return edit_data(p, lambda d: d["entries"][0].__setitem__("id", "a/../b"))


@case(65, CATALOGUE, "field 'id'", "not usable in file names")
def entry_id_with_control_character(p):
    return edit_data(p, lambda d: d["entries"][0].__setitem__("id", "smoke\u202eregister"))


@case(65, CATALOGUE + r":20\b", FIRST, "field 'id'", "used twice")
def duplicate_entry_id(p):
    return edit_data(p, lambda d: d["entries"][1].__setitem__("id", "smoke-register"))


@case(65, CATALOGUE, FIRST, "field 'persona'", "dr_who")
def unknown_persona(p):
    return edit_data(p, lambda d: d["entries"][0].__setitem__("persona", "dr_who"))


@case(65, CATALOGUE, FIRST, "field 'preset'", "ultra")
def unknown_entry_preset(p):
    return edit_data(p, lambda d: d["entries"][0].__setitem__("preset", "ultra"))


@case(65, CATALOGUE, FIRST, "field 'size'", "huge")
def size_not_a_size(p):
    return edit_data(p, lambda d: d["entries"][0].__setitem__("size", "huge"))


@case(65, CATALOGUE, FIRST, "field 'size'", "too small")
def size_too_small(p):
    return edit_data(p, lambda d: d["entries"][0].__setitem__("size", "10*10"))


@case(65, CATALOGUE, FIRST, "field 'answer'", "empty")
def blank_answer(p):
    return edit_data(p, lambda d: d["entries"][0].__setitem__("answer", "   "))


@case(65, CATALOGUE, FIRST, "field 'answer")
def answer_is_a_list(p):
    return edit_data(p, lambda d: d["entries"][0].__setitem__("answer", [1, 2]))


@case(65, CATALOGUE, FIRST, "field 'answer.zh'", "no voice")
def language_without_voice(p):
    def change(d):
        d["entries"][0]["question"] = {"en": "Where?", "zh": "在哪里？"}
        d["entries"][0]["answer"] = {"en": "Here.", "zh": "这里。"}

    return edit_data(p, change)


@case(65, CATALOGUE, "field 'personas.dr_chen.voices.en'", "not installed")
def voice_not_installed(p):
    return edit_text(p, "voices: {en: en-us}", "voices: {en: xx-nowhere}")


@case(65, CATALOGUE, "field 'personas.dr_chen.voices.en'", "not a voice id")
def voice_that_is_an_option(p):
    return edit_text(p, "voices: {en: en-us}", "voices: {en: --version}")


@case(65, CATALOGUE, "field 'defaults.languages.0'", "not a language code")
def bad_language_code(p):
    return edit_text(p, "languages: [en]", "languages: [EN_us]")


@case(65, CATALOGUE, "field 'entries'")
def entries_not_a_list(p):
    return edit_data(p, lambda d: d.__setitem__("entries", {"smoke-register": "hi"}))


@case(65, CATALOGUE, "field 'entries'", "no entries")
def no_entries(p):
    return edit_data(p, lambda d: d.__setitem__("entries", []))


@case(65, CATALOGUE, "field 'personas'", "no personas")
def no_personas(p):
    return edit_data(p, lambda d: d.__setitem__("personas", {}))


@case(65, CATALOGUE, "field 'defaults.renderer'", "gpu")
def unknown_renderer(p):
    return edit_text(p, "renderer: still", "renderer: gpu")


@case(65, CATALOGUE, "field 'library'", "is a file")
def library_is_a_file(p):
    return edit_text(p, "library: ../output/smoke", "library: ../assets/dr_chen.png")


@case(65, CATALOGUE, "field 'library'", "climbs out")
def library_climbs_out(p):
    return edit_text(p, "library: ../output/smoke", "library: ../../../../tmp/evil")


@case(65, CATALOGUE, "field 'library'", "absolute")
def library_absolute(p):
    return edit_text(p, "library: ../output/smoke", "library: /tmp/evil")
