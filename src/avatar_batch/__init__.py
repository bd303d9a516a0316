"""avatar-batch: render a talking-avatar FAQ video library offline.

Data flows one way: catalogue -> plan -> speech -> render -> mux -> library.
`batch` wires the stages, `cli` talks to people; `core` is the foundation every
stage may import.
"""

__version__ = "0.1.0"
