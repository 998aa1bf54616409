"""The disco KFP pipeline: :func:`pipelines.factory.make_pipeline` wires the components;
:mod:`pipelines.compile` writes the YAML (``pipelines/<pipeline name>.yaml``)."""
