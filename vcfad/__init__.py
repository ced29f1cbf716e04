"""vcfad: voice cloning and fake-audio detection."""

__version__ = "0.1.0"
