"""vcfad detector service."""
