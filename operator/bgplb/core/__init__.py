"""The pure core: snapshot → plan, and validation. No I/O anywhere below this package."""
