"""``sftkit export``: a tuned model as a GGUF file (llama.cpp, LM Studio) or an Ollama directory, verified
against the model it came from (:mod:`.verify`)."""
