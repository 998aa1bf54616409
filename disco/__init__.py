"""disco: musical instrument recognition on OpenMIC-2018, from raw audio to an exported model."""

__version__ = "0.1.0"
