"""anatomica: controllable generation of 3D anatomy."""

__version__ = "0.1.0"
