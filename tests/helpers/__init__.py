"""Test helpers shared by several test modules: dataset and model fixtures, the GCS emulator, the
image probe and the original musicnn's golden-output script. Tests import them as ``helpers.<name>``
(pytest puts ``tests/`` on sys.path)."""
