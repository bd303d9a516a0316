"""Foundation shared by every stage: typed errors, frozen records, the one
subprocess helper, atomic file writes and settings resolution. Imports no stage."""
