"""Textual themes and stylesheets: data only, imported by the app."""
