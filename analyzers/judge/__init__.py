"""LLM-judge quality: deterministic sampling, rubric judging over an OpenAI-compatible API, human review,
judge calibration and quality-regression findings. `plugin.build_analyzers` wires it into the analyzers."""
