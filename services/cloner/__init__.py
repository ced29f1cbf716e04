"""vcfad cloner service."""
