"""Converters: another package's bundled weights -> a plain Hugging Face folder (config, safetensors, tokenizer)
that AutoModel / AutoTokenizer load offline and the hf backend serves; one module per source format."""
