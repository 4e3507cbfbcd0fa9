"""The controller: watches → snapshot → plan → diff → apply, with one active replica."""
