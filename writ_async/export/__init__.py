"""Kept episodes as training data: SFT, TRL, preference pairs, data statistics."""
