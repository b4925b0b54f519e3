"""Typed commands of the ``mobile2dslr`` console script besides LightningCLI's."""
