"""SPIRAL: closed-loop action world models from image-to-video backbones."""

__version__ = "0.1.0"
