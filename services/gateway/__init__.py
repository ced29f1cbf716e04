"""vcfad gateway service."""
