"""dagster-ecs-emulator: the offline profile's embedded AWS endpoint (moto + compatibility shims)."""

__version__ = "0.1.0"
