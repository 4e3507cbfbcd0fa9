"""The bgplb admission webhook server (decisions live in bgplb.core.admission)."""
