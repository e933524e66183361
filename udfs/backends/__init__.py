"""Worker-side model loaders, one per ``kind`` (how weights are laid out), not per architecture."""
