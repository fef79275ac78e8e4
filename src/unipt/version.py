"""The package version (its own module, so saved files can record it without importing the package root)."""

__version__ = "0.1.0"
