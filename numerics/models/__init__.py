"""Real ``nn.Module`` models, each settable to a point given in a theorem's coordinates."""
