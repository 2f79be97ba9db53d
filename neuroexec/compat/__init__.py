"""Compatibility with ClinicaDL: its train config TOML, its MAPS (both generations), its older layouts."""
