"""The catalogue stage: a YAML file of FAQ entries in, a validated `Catalogue` out.

`load_catalogue` checks everything a run will need (structure, references,
files, voices) and raises one `CatalogueError` listing every problem;
`render_prompt` fills a persona's prompt template for one entry and language;
`write_project` starts a new project from the packaged scaffold.
See `paths` for where a catalogue's paths may point.
"""

from avatar_batch.catalogue.load import SUPPORTED_VERSION, load_catalogue
from avatar_batch.catalogue.paths import find_catalogue_root
from avatar_batch.catalogue.prompt import PROMPT_FIELDS, language_name, render_prompt
from avatar_batch.catalogue.scaffold import EXAMPLE_CATALOGUE, write_project

__all__ = [
    "EXAMPLE_CATALOGUE",
    "PROMPT_FIELDS",
    "SUPPORTED_VERSION",
    "find_catalogue_root",
    "language_name",
    "load_catalogue",
    "render_prompt",
    "write_project",
]
