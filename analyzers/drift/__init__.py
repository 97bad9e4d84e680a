"""Statistical input/output drift of LLM traffic (numeric, categorical and text); see docs/drift.md."""
