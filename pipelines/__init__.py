"""The disco KFP pipeline: :func:`disco_pipelines.factory.make_pipeline` wires the components;
:mod:`disco_pipelines.compile` writes the YAML (``pipelines/<pipeline name>.yaml``)."""
