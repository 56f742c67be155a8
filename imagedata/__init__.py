"""Labelled image data in TFX's image TFRecord format: writing, reading, decoding."""
