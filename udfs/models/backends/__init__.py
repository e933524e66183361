"""Worker-side model kinds: each module turns a registered ``textspark/`` folder into an in-memory model
(Hugging Face encoder, heads, classifier, seq2seq, fastText, Bergamot) and batches by token budget."""
