"""The colour reference card: its maths (colour spaces, the fitted correction), the card and
the scenes it is rendered in (shared with the trainer's generator), finding it in a frame and
deciding whether to trust the correction."""
